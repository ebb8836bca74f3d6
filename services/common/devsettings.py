"""Settings of a one-off command (`python -m services.audit verify`, `... retention`, token minting) on a
developer's machine: the environment first, else what the running `make dev` wrote under `.dev/`, else an
exit naming exactly the variables that are missing.

`make dev` writes each service's environment to `.dev/env/<service>.json` (owner-only: it holds dev keys).
Services themselves never read it: a running service is configured by its environment alone."""

import json
import os
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

DEV_DIR_ENV = "REVISIT_DEV_DIR"
SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class MissingSettings(SystemExit):
    """A command cannot run: the message names the variables and where they could have come from."""


def dev_dir() -> Path:
    """`.dev/` of the repository in the current directory (REVISIT_DEV_DIR to point elsewhere)."""
    return Path(os.environ.get(DEV_DIR_ENV, ".dev"))


def dev_settings_file(service: str) -> Path:
    return dev_dir() / "env" / f"{service}.json"


def write_dev_settings(directory: Path, service: str, environment: dict[str, str]) -> Path:
    """What `make dev` gives `service`, for the commands run beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{service}.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps(environment, indent=2))
    return path


def missing_variables(error: ValidationError, settings_type: type[BaseSettings]) -> list[str]:
    prefix = str(settings_type.model_config.get("env_prefix", ""))
    return [f"{prefix}{item['loc'][0]}".upper() for item in error.errors() if item["type"] == "missing" and item["loc"]]


def command_settings(settings_type: type[SettingsT], service: str) -> SettingsT:
    """`settings_type` from the environment, completed by `.dev/env/<service>.json` where a variable is unset."""
    try:
        return settings_type()
    except ValidationError as error:
        missing = missing_variables(error, settings_type)
        if not missing:
            raise
        saved = dev_settings_file(service)
        if not saved.exists():
            raise MissingSettings(
                f"error: {', '.join(missing)} not set, and no dev stack settings in {saved} "
                "(`make dev` writes them while it runs)"
            ) from None
    for name, value in json.loads(saved.read_text()).items():
        os.environ.setdefault(name, value)
    try:
        return settings_type()
    except ValidationError as error:
        missing = missing_variables(error, settings_type)
        raise MissingSettings(
            f"error: {', '.join(missing) or str(error)} not set, neither in the environment nor in {saved}"
        ) from None
