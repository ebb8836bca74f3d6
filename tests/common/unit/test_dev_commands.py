"""Commands a developer runs beside `make dev`: minting a token for any role from the dev key in `.dev/`, and
settings taken from the running stack's `.dev/env/` or refused naming exactly the missing variables."""

import json
from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack.stack import load_or_create_keys
from services.common.auth import Role, TokenVerifier, main
from services.common.devsettings import MissingSettings, command_settings, write_dev_settings


class DemoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVISIT_", extra="ignore")
    nats_url: str = Field()
    postgres_dsn: str = Field()
    log_level: str = "INFO"


@pytest.fixture
def dev_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REVISIT_DEV_DIR", str(tmp_path / ".dev"))
    for name in ("REVISIT_JWT_PRIVATE_KEY", "REVISIT_NATS_URL", "REVISIT_POSTGRES_DSN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / ".dev"


def test_mint_signs_with_the_dev_key_for_any_role(dev_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = load_or_create_keys(dev_dir / "keys")
    main(["mint", "--role", "viewer", "--role", "analyst", "--tenant", "demo", "--subject", "ann"])
    principal = TokenVerifier(keys.public_pem, "revisit", "revisit").verify(capsys.readouterr().out.strip())
    assert (principal.tenant_id, principal.subject, principal.roles) == (
        "demo",
        "ann",
        frozenset({Role.VIEWER, Role.ANALYST}),
    )


def test_mint_without_a_key_names_the_variable_and_the_file(dev_dir: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["mint", "--role", "admin", "--tenant", "demo"])
    assert "REVISIT_JWT_PRIVATE_KEY is not set" in str(stopped.value)
    assert str(dev_dir / "keys" / "jwt-private.pem") in str(stopped.value)


def test_mint_names_roles_as_words(dev_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["mint", "--role", "root", "--tenant", "demo"])
    assert "(choose from 'admin', 'analyst', 'viewer', 'device', 'platform')" in capsys.readouterr().err


def test_command_settings_name_what_is_missing_without_a_dev_stack(dev_dir: Path) -> None:
    with pytest.raises(MissingSettings) as stopped:
        command_settings(DemoSettings, "audit")
    message = str(stopped.value)
    assert (
        "REVISIT_NATS_URL, REVISIT_POSTGRES_DSN not set" in message and str(dev_dir / "env" / "audit.json") in message
    )


def test_command_settings_complete_the_environment_from_the_running_dev_stack(
    dev_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = write_dev_settings(
        dev_dir / "env",
        "audit",
        {"REVISIT_NATS_URL": "nats://127.0.0.1:14222", "REVISIT_POSTGRES_DSN": "postgresql://x"},
    )
    assert saved.stat().st_mode & 0o077 == 0  # dev keys inside: owner only
    monkeypatch.setenv("REVISIT_POSTGRES_DSN", "postgresql://given")  # the environment wins
    settings = command_settings(DemoSettings, "audit")
    assert (settings.nats_url, settings.postgres_dsn) == ("nats://127.0.0.1:14222", "postgresql://given")
    assert json.loads(saved.read_text())["REVISIT_POSTGRES_DSN"] == "postgresql://x"
