"""Audit settings."""

from pydantic import Field

from services.common.settings import PostgresServiceSettings


class AuditSettings(PostgresServiceSettings):
    http_port: int = Field(8005, description="Port of /healthz, /readyz, /metrics and the REST API")
