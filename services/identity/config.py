"""Identity settings."""

from pydantic import Field

from services.common.settings import RestServiceSettings


class IdentitySettings(RestServiceSettings):
    http_port: int = Field(8003, description="Port of /healthz, /readyz, /metrics and the REST API")
    postgres_dsn: str = Field(description="postgresql://user:pass@host:5432/db; the user owns schema identity")
