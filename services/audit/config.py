"""Audit settings."""

from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.audit.domain.checkpoint import load_public_keys, load_signing_key
from services.common.settings import Environment, PostgresServiceSettings


class AuditSettings(PostgresServiceSettings):
    # a refused signing key must not be echoed into the logs
    model_config = SettingsConfigDict(**PostgresServiceSettings.model_config, hide_input_in_errors=True)

    http_port: int = Field(8005, description="Port of /healthz, /readyz, /metrics and the REST API")
    postgres_dsn: str = Field(
        description="postgresql://user:pass@host:5432/db of audit's runtime login: it must own nothing and may"
        " only read and insert (it is granted `revisit_audit` at start); refused if it could UPDATE or DELETE"
    )
    postgres_migration_dsn: str | None = Field(
        None,
        description="Login that owns schema `audit` and runs its migrations; REVISIT_POSTGRES_DSN is then a"
        " separate login that may only read and insert. Required outside dev and test; without it (dev and"
        " test only) REVISIT_POSTGRES_DSN migrates and the pool SET ROLEs, which RESET ROLE undoes",
    )
    audit_signing_key: str = Field(
        description="Ed25519 private key that signs chain checkpoints: PKCS8 PEM, or the raw 32-byte seed as"
        " 64 hex digits or base64 (docs/operations.md)",
    )
    audit_previous_public_keys: str = Field(
        "", description="PEM public keys of earlier signing keys, concatenated, so older checkpoints still verify"
    )
    audit_checkpoint_every_records: int = Field(
        100, ge=1, description="Sign a checkpoint of a tenant's chain after this many records"
    )
    audit_checkpoint_every_seconds: float = Field(
        60.0, gt=0, description="... or this long after the first record not yet covered by one"
    )

    @field_validator("audit_signing_key")
    @classmethod
    def signing_key_is_ed25519(cls, value: str) -> str:
        """A placeholder or a key of another kind is refused at start, not at the first checkpoint."""
        load_signing_key(value)
        return value

    @field_validator("audit_previous_public_keys")
    @classmethod
    def previous_keys_are_ed25519(cls, value: str) -> str:
        load_public_keys(value)
        return value

    @model_validator(mode="after")
    def owner_login_is_separate_outside_dev(self) -> Self:
        """Outside dev and test the runtime login must not be the schema owner (it could rewrite the chain)."""
        if self.environment == Environment.PRODUCTION and self.postgres_migration_dsn is None:
            raise ValueError(
                "REVISIT_POSTGRES_MIGRATION_DSN is required outside dev and test: the audit service's own"
                " login (REVISIT_POSTGRES_DSN) must not own its table"
            )
        return self
