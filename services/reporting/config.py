"""Reporting settings."""

from pydantic import Field

from services.common.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    http_port: int = 8004
    postgres_dsn: str = Field(description="postgresql://user:pass@host:5432/db; the user owns schema reporting")
    jwt_public_key: str
    jwt_issuer: str = "revisit"
    jwt_audience: str = "revisit"
    visit_gap_minutes: int = Field(30, ge=1, description="Sightings closer than this are one visit")
    returning_lookback_days: int = Field(90, ge=1, description="A visit is returning if an earlier one is this recent")
