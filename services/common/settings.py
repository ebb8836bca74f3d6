"""The settings every service shares; each service subclasses it with its own fields."""

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.registry import RETENTION_MAX_DAYS, RetentionPolicyEntry


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseSettings):
    """Read from `REVISIT_*` environment variables. URLs have no defaults: a service is told where things are."""

    model_config = SettingsConfigDict(env_prefix="REVISIT_", extra="ignore")

    environment: Environment = Field(Environment.PRODUCTION, description="dev, test or production")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    nats_url: str = Field(description="NATS server with JetStream, e.g. nats://nats:4222")
    nats_credentials: Path | None = Field(
        None,
        description="The service's NATS user (.creds file: user JWT and nkey seed), needed when the server "
        'runs with JWT auth, as it must in production (docs/operations.md, "NATS accounts and users")',
    )
    nats_stream_replicas: int = Field(
        1, ge=1, le=5, description="Replicas of the streams and KV buckets the service declares; 3 in production"
    )
    http_host: str = Field("0.0.0.0", description="Address of /healthz, /readyz, /metrics and the REST API")
    http_port: int = Field(8000, description="Port of the same")
    startup_timeout_seconds: float = Field(
        30.0, gt=0, description="How long to wait for dependencies at start before exiting with a message"
    )
    max_deliveries: int = Field(
        5, ge=1, description="A message that failed this many times goes to deadletter.<service>.<subject>"
    )


class RestServiceSettings(ServiceSettings):
    """A service with REST routes behind JWT (RS256) verification."""

    jwt_public_key: str = Field(description="PEM of the RS256 key that signs user and device tokens")
    jwt_issuer: str = Field("revisit", description="Expected `iss` of tokens")
    jwt_audience: str = Field("revisit", description="Expected `aud` of tokens")


class PostgresServiceSettings(RestServiceSettings):
    """A REST service that owns a Postgres schema."""

    postgres_dsn: str = Field(
        description="postgresql://user:pass@host:5432/db; the user owns the service's schema (docs/operations.md)"
    )


class RetentionSettings(ServiceSettings):
    """The retention policy of a tenant that set none (`PUT /v1/retention` in identity sets one); a service whose
    `retention` job deletes data, and identity, which answers `GET /v1/retention` with it, mix this in."""

    retention_crops_days: int = Field(30, ge=1, le=RETENTION_MAX_DAYS, description="Default days face crops are kept")
    retention_vectors_unseen_days: int = Field(
        365, ge=1, le=RETENTION_MAX_DAYS, description="Default days after a person's newest vector that its vectors go"
    )
    retention_sightings_days: int = Field(
        400,
        ge=1,
        le=RETENTION_MAX_DAYS,
        description="Default days sightings are kept (a year-over-year view needs > 365)",
    )
    retention_visits_days: int = Field(
        400, ge=1, le=RETENTION_MAX_DAYS, description="Default days visits are kept; at least the sightings' days"
    )

    @model_validator(mode="after")
    def default_policy_is_valid(self) -> Self:
        self.default_retention("default")
        return self

    def default_retention(self, tenant_id: str) -> RetentionPolicyEntry:
        """The policy of a tenant without its own entry (the same validation as a tenant's)."""
        return RetentionPolicyEntry(
            tenant_id=tenant_id,
            crops_days=self.retention_crops_days,
            vectors_unseen_days=self.retention_vectors_unseen_days,
            sightings_days=self.retention_sightings_days,
            visits_days=self.retention_visits_days,
        )
