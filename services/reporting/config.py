"""Reporting settings."""

from pydantic import Field

from services.common.settings import PostgresServiceSettings, RetentionSettings


class ReportingSettings(PostgresServiceSettings, RetentionSettings):
    http_port: int = Field(8004, description="Port of /healthz, /readyz, /metrics and the REST API")
    visit_gap_minutes: int = Field(30, ge=1, description="Sightings closer than this are one visit")
    returning_lookback_days: int = Field(90, ge=1, description="A visit is returning if an earlier one is this recent")
    business_metrics_seconds: float = Field(
        60, gt=0, description="How often the business gauges (visitors today, occupancy, dwell per site) are refreshed"
    )
    business_metrics_max_sites: int = Field(
        200, ge=0, description="Sites exported in the business gauges (labels tenant and site); the rest are counted"
    )
    sighting_batch_size: int = Field(
        256, ge=1, le=1024, description="Matched sightings fetched at once and folded into visits in one transaction"
    )
