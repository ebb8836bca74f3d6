"""Audit settings."""

from pydantic import Field

from services.common.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    http_port: int = Field(8005, description="Port of /healthz, /readyz, /metrics and the REST API")
    postgres_dsn: str = Field(description="postgresql://user:pass@host:5432/db; the user owns schema audit")
    jwt_public_key: str = Field(description="PEM of the RS256 key that signs user tokens")
    jwt_issuer: str = Field("revisit", description="Expected `iss` of tokens")
    jwt_audience: str = Field("revisit", description="Expected `aud` of tokens")
