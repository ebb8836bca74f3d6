"""The edge is its own deployable (STYLE rule 11): it imports `schemas`, `plumbing` and its own modules, never
`services`, and it runs without the server's dependencies, which its install (`.[edge]`) does not bring."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EDGE_SIDE = ("edge", "plumbing", "schemas")
"""What the edge image holds (deploy/edge/Dockerfile copies these and nothing else of the repository)."""
SERVER_ONLY_MODULES = ("services", "devstack", "fastapi", "faststream", "uvicorn", "asyncpg", "pymilvus", "aioboto3")
SERVER_ONLY_DISTRIBUTIONS = {"faststream", "fastapi", "uvicorn", "asyncpg", "pymilvus", "aioboto3", "pyjwt"}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` in the file names, at any depth (functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    sorted(path for package in EDGE_SIDE for path in (ROOT / package).rglob("*.py")),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_edge_side_code_never_imports_the_server(path: Path) -> None:
    forbidden = {name for name in imported_modules(path) if name.split(".")[0] in SERVER_ONLY_MODULES}
    assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)}"


def test_the_import_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def late():\n    from services.common.logging import get_logger\n    import fastapi\n")
    assert imported_modules(sample) == {"services.common.logging", "fastapi"}


BLOCKER = """
import importlib, importlib.abc, pkgutil, sys

class RefuseServer(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"the edge must not need {{name}}")
        return None

sys.meta_path.insert(0, RefuseServer())
import edge
for module in pkgutil.walk_packages(edge.__path__, "edge."):
    importlib.import_module(module.name)
import edge.__main__
print("imported", len(sys.modules))
"""


def test_every_edge_module_imports_with_the_server_dependencies_absent() -> None:
    """A transitive import (edge -> schemas -> ...) of anything server-only fails here, not in the field."""
    script = BLOCKER.format(blocked=set(SERVER_ONLY_MODULES))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("imported")


def requirement_name(requirement: str) -> str:
    return requirement.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()


def test_the_edge_install_brings_no_server_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    edge_install = {requirement_name(r) for r in project["dependencies"] + extras["edge"]}
    server = {requirement_name(r) for r in extras["server"]}
    assert server >= SERVER_ONLY_DISTRIBUTIONS
    assert not edge_install & SERVER_ONLY_DISTRIBUTIONS, edge_install & SERVER_ONLY_DISTRIBUTIONS
    assert not edge_install & {requirement_name(r) for r in extras["embedded"]}
