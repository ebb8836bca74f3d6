"""The envelope every event carries."""

import uuid
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.ids import new_event_id

TOKEN_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Tenant, site and camera ids travel as NATS subject tokens, so they are restricted to safe ones."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields shared by every event; each subclass pins `schema` to its name and version."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    event_id: uuid.UUID = Field(default_factory=new_event_id, description="UUIDv7, unique per event")
    tenant_id: str = Field(pattern=TOKEN_PATTERN)
    occurred_at: AwareDatetime = Field(default_factory=utc_now, description="When the producer emitted it")

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()
