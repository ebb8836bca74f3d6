"""Files generated from code (docs/asyncapi.yaml, docs/configuration.md): write them, or check they are current."""

from pathlib import Path


def write_or_check(path: Path, text: str, argv: list[str], regenerate: str) -> int:
    """With `--check` in argv: 1 (and how to fix it) if `path` differs from `text`; else write it. Exit status."""
    if "--check" not in argv:
        path.write_text(text)
        return 0
    if path.exists() and path.read_text() == text:
        return 0
    print(f"{path.name} is stale: run `{regenerate}`")
    return 1
