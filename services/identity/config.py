"""Identity settings."""

from pydantic import Field

from services.common.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    http_port: int = 8003
    postgres_dsn: str = Field(description="postgresql://user:pass@host:5432/db; the user owns schema identity")
    jwt_public_key: str
    jwt_issuer: str = "revisit"
    jwt_audience: str = "revisit"
