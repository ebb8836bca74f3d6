"""The registry of a tenant's sites, cameras, allowed embedding models and retention policy, as identity
publishes it.

Identity owns the registry (Postgres) and mirrors its current state into the NATS KV bucket
`REGISTRY_BUCKET`: ingest checks events against it, reporting takes the sites' time zones from it. Every
change is a new value (or a deleted key) of the bucket, which other services watch: the bucket is the
event stream of registry changes, compacted to the latest state per key.
"""

from datetime import time
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.base import TOKEN_PATTERN, utc_now
from schemas.models import MODEL_ID_PATTERN

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class OpeningHours(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    opens: time
    closes: time

    @field_validator("opens", "closes", mode="before")
    @classmethod
    def time_of_day_is_text(cls, value: object) -> object:
        """A number is not a time of day: lax pydantic read `0` as 00:00 (found by the fuzz lane)."""
        if not isinstance(value, str | time):
            raise ValueError("must be a time of day as text, e.g. 09:30")
        return value


class RegistryValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    tenant_id: str = Field(pattern=TOKEN_PATTERN)
    updated_at: AwareDatetime = Field(default_factory=utc_now)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class SiteEntry(RegistryValue):
    """A store or venue; its local days and hours are those of `time_zone` (IANA, e.g. America/New_York)."""

    schema_name: Literal["SiteEntry.v1"] = Field("SiteEntry.v1", alias="schema")
    site_id: str = Field(pattern=TOKEN_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    time_zone: str = Field(min_length=1, max_length=64)
    opening_hours: dict[Weekday, Annotated[list[OpeningHours], Field(max_length=4)]] | None = None

    @field_validator("time_zone")
    @classmethod
    def known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris)") from error
        return value


class CameraEntry(RegistryValue):
    """A camera at one site; events name it in `camera_id`."""

    schema_name: Literal["CameraEntry.v1"] = Field("CameraEntry.v1", alias="schema")
    camera_id: str = Field(pattern=TOKEN_PATTERN)
    site_id: str = Field(pattern=TOKEN_PATTERN)
    name: str | None = Field(None, max_length=200)


class TenantModelsEntry(RegistryValue):
    """The embedding models the tenant's edges may use; an event of another model is refused."""

    schema_name: Literal["TenantModelsEntry.v1"] = Field("TenantModelsEntry.v1", alias="schema")
    embedding_models: list[Annotated[str, Field(pattern=MODEL_ID_PATTERN)]] = Field(max_length=16)


RETENTION_MAX_DAYS = 3650
"""Ten years: a longer period is a typo, not a policy."""


class RetentionPolicyEntry(RegistryValue):
    """How long the tenant's data is kept; each owning service's retention job reads it (key `<tenant>.retention`).

    Days count back from the job's run. Visits are kept at least as long as the sightings they come from (a
    visit recomputed from sightings would otherwise come back), and crops no longer than their sightings (an
    erasure finds a person's crops through its sightings)."""

    schema_name: Literal["RetentionPolicyEntry.v1"] = Field("RetentionPolicyEntry.v1", alias="schema")
    crops_days: int = Field(ge=1, le=RETENTION_MAX_DAYS, description="Face crops (ingest's bucket) older than this go")
    vectors_unseen_days: int = Field(
        ge=1, le=RETENTION_MAX_DAYS, description="A person's vectors go when its newest one is older than this"
    )
    sightings_days: int = Field(
        ge=1, le=RETENTION_MAX_DAYS, description="Sightings (identity, reporting; unidentified too) older than this go"
    )
    visits_days: int = Field(ge=1, le=RETENTION_MAX_DAYS, description="Visits that started longer ago than this go")

    @model_validator(mode="after")
    def visits_outlive_their_sightings(self) -> Self:
        if self.visits_days < self.sightings_days:
            raise ValueError(
                f"visits_days ({self.visits_days}) is below sightings_days ({self.sightings_days}): visits are"
                " derived from sightings and must be kept at least as long"
            )
        if self.crops_days > self.sightings_days:
            raise ValueError(
                f"crops_days ({self.crops_days}) is above sightings_days ({self.sightings_days}): an erasure finds a"
                " person's crops through its sightings, so a crop must not outlive its sighting"
            )
        return self
