"""Generate `docs/configuration.md` from the settings classes, so the documented variables are the real
ones: `python -m devstack.configdoc [--check]` (the check runs in `make lint`)."""

import sys
from pathlib import Path

from pydantic_settings import BaseSettings

from devstack.generated import write_or_check
from edge.config import EdgeSettings
from services.audit.config import AuditSettings
from services.console.config import ConsoleSettings
from services.identity.config import IdentitySettings
from services.ingest.config import IngestSettings
from services.matcher.config import MatcherSettings
from services.reporting.config import ReportingSettings

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
SECTIONS: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("ingest (`python -m services.ingest`)", IngestSettings),
    ("matcher (`python -m services.matcher`)", MatcherSettings),
    ("identity (`python -m services.identity`)", IdentitySettings),
    ("reporting (`python -m services.reporting`)", ReportingSettings),
    ("audit (`python -m services.audit`)", AuditSettings),
    ("console (`python -m services.console`, docs/console.md)", ConsoleSettings),
    ("edge (`python -m edge run`)", EdgeSettings),
)
INTRO = """# Configuration

Every process reads environment variables (pydantic-settings). A variable without a default is
required: the process exits at start with a message naming it. URLs and secrets have no defaults;
`make dev` and the tests set them for the embedded infrastructure (see `devstack/stack.py`).
Generated from the settings classes by `python -m devstack.configdoc`; `make lint` checks it is current.
"""


def variable_name(settings: type[BaseSettings], field: str) -> str:
    alias = settings.model_fields[field].validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return " / ".join(f"`{c}`" for c in choices if isinstance(c, str) and c.isupper())
    prefix = str(settings.model_config.get("env_prefix", ""))
    return f"`{(prefix + field).upper()}`"


def render_section(title: str, settings: type[BaseSettings]) -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in settings.model_fields.items():
        default = "**required**" if field.is_required() else f"`{field.get_default(call_default_factory=True)}`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| {variable_name(settings, name)} | {default} | {description} |")
    return f"## {title}\n\n" + "\n".join(rows) + "\n"


def render() -> str:
    return INTRO + "\n" + "\n".join(render_section(title, settings) for title, settings in SECTIONS)


def main(argv: list[str]) -> int:
    return write_or_check(DOCUMENT, render(), argv, "python -m devstack.configdoc")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
