"""Where benchmark figures go: each benchmark prints its table and writes it as one section of
docs/BENCHMARKS.md (sections are replaced by name, so benchmarks can run one at a time)."""

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADER = """# Benchmarks

Measured by `make bench` (each figure below is printed by the benchmark that wrote it). Re-run after a
change that touches a measured path; the machine line of each section says where it was measured.
"""


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, title: str, body: str) -> None:
    """Print `body` and store it as the section `name` of docs/BENCHMARKS.md."""
    stamp = f"_{datetime.now(UTC):%Y-%m-%d}, {machine()}_"
    section = f"<!-- bench:{name} -->\n## {title}\n\n{stamp}\n\n{body.strip()}\n<!-- /bench:{name} -->\n"
    print(f"\n## {title}\n\n{body.strip()}\n")
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    BENCHMARKS_MD.write_text(text)


def table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
