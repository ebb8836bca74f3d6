"""The settings every service shares; each service subclasses it with its own fields."""

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
