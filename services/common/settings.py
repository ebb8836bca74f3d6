"""The settings every service shares; each service subclasses it with its own fields."""

from enum import StrEnum

from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseSettings):
    """Read from `REVISIT_*` environment variables. URLs have no defaults: a service is told where things are."""

    model_config = SettingsConfigDict(env_prefix="REVISIT_", extra="ignore")

    environment: Environment = Environment.PRODUCTION
    log_level: str = "INFO"
    nats_url: str
    http_host: str = "0.0.0.0"
    http_port: int = 8000
    startup_timeout_seconds: float = 30.0
    max_deliveries: int = 5
    """A message that failed this many times goes to the dead-letter subject."""
