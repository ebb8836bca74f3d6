"""Audit settings."""

from pydantic import Field

from services.common.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    http_port: int = 8005
    postgres_dsn: str = Field(description="postgresql://user:pass@host:5432/db; the user owns schema audit")
    jwt_public_key: str
    jwt_issuer: str = "revisit"
    jwt_audience: str = "revisit"
