"""The images' Dockerfiles (the services, their `console` target, the edge): hadolint (the wheel's release binary,
.hadolint.yaml: warnings fail) finds nothing, and each is what the chart and the edge's packaging expect. There is
no Docker engine here, so the build itself is checked by reading: multi-stage, installed within constraints.txt,
UID 10001, no models, only its own code."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES_IMAGE = ROOT / "deploy" / "services" / "Dockerfile"
EDGE_IMAGE = ROOT / "deploy" / "edge" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


Steps = list[tuple[str, str]]


def stages(path: Path) -> dict[str, Steps]:
    """Each stage's instructions by its name (`FROM ... AS name`); the FROM line is the first of each."""
    found: dict[str, Steps] = {}
    for instruction, arguments in instructions(path):
        if instruction == "FROM":
            name = arguments.split(" AS ")[-1] if " AS " in arguments else f"stage{len(found)}"
            found[name] = []
        found[list(found)[-1]].append((instruction, arguments))
    return found


def copied_sources(steps: Steps) -> set[str]:
    return {
        source
        for instruction, arguments in steps
        if instruction == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }


@pytest.mark.parametrize("path", [SERVICES_IMAGE, EDGE_IMAGE], ids=["services", "edge"])
def test_hadolint_finds_nothing(path: Path) -> None:
    result = subprocess.run([str(HADOLINT), str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run([str(HADOLINT), str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize(
    ("path", "image", "build", "extra", "code"),
    [
        (SERVICES_IMAGE, "services", "build", "server", {"services"}),
        (SERVICES_IMAGE, "console", "console-build", "server,edge", {"services", "edge"}),
        (EDGE_IMAGE, "stage1", "build", "edge", {"edge"}),
    ],
    ids=["services", "console", "edge"],
)
def test_each_image_is_multi_stage_non_root_and_pinned(
    path: Path, image: str, build: str, extra: str, code: set[str]
) -> None:
    """The services image is the default (last) stage; the console is `--target console` of the same file."""
    found = stages(path)
    names = list(found)
    assert names[0] == "build" and (image == "console" or names[-1] == image)
    final, built = found[image], found[build]
    assert ("USER", "10001:10001") in final
    assert any(i == "COPY" and a.startswith(f"--from={build} /opt/revisit") for i, a in final)
    base = final[0][1].split()[0]
    assert base in found or base.startswith("python:3.11-slim"), "the final stage starts from a slim Python"
    assert not any(i == "RUN" and "pip install" in a for i, a in final + found.get(base, [])), "nothing built there"
    installs = [a for i, a in built if i == "RUN" and "pip install" in a]
    assert installs and all(f'--constraint constraints.txt ".[{extra}]"' in a for a in installs)
    assert copied_sources(built) == {"constraints.txt", "pyproject.toml", "README.md", "schemas", "plumbing"} | code


def test_the_services_image_carries_no_face_stack_and_the_console_image_runs_the_console() -> None:
    found = stages(SERVICES_IMAGE)
    assert "edge" not in copied_sources(found["build"])
    assert ("CMD", '["python", "-m", "services.console"]') in found["console"]
    assert ("EXPOSE", "8080") in found["console"]
    chart_values = (ROOT / "deploy" / "helm" / "revisit" / "values.yaml").read_text()
    assert "repository: revisit-console" in chart_values


def test_the_chart_runs_the_services_image_user() -> None:
    values = (ROOT / "deploy" / "helm" / "revisit" / "values.yaml").read_text()
    assert "runAsUser: 10001" in values and "runAsGroup: 10001" in values


def test_the_build_context_leaves_out_models_and_the_work_tree() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "models", "tests", ".dev"} <= ignored
