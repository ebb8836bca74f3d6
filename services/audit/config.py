"""Audit settings."""

from pydantic import Field

from services.common.settings import RestServiceSettings


class AuditSettings(RestServiceSettings):
    http_port: int = Field(8005, description="Port of /healthz, /readyz, /metrics and the REST API")
    postgres_dsn: str = Field(description="postgresql://user:pass@host:5432/db; the user owns schema audit")
