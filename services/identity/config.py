"""Identity settings."""

from pydantic import Field

from services.common.settings import PostgresServiceSettings


class IdentitySettings(PostgresServiceSettings):
    http_port: int = Field(8003, description="Port of /healthz, /readyz, /metrics and the REST API")
