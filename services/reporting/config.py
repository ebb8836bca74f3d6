"""Reporting settings."""

from pydantic import Field

from services.common.settings import RestServiceSettings


class ReportingSettings(RestServiceSettings):
    http_port: int = Field(8004, description="Port of /healthz, /readyz, /metrics and the REST API")
    postgres_dsn: str = Field(description="postgresql://user:pass@host:5432/db; the user owns schema reporting")
    visit_gap_minutes: int = Field(30, ge=1, description="Sightings closer than this are one visit")
    returning_lookback_days: int = Field(90, ge=1, description="A visit is returning if an earlier one is this recent")
