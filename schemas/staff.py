"""The staff gallery: what identity writes into NATS KV and every edge of the tenant watches.

It is a KV value (bucket `STAFF_GALLERY_BUCKET`, key `staff_gallery_key(tenant, staff_id)`), not a stream
event: the latest value per staff member is the state, a deleted key is a removed staff member.
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.base import TOKEN_PATTERN, utc_now
from schemas.faces import Embedding

MAX_STAFF_EMBEDDINGS = 10
"""A few photos per person (frontal, glasses, profile) cover them; more only slows every edge's check."""


class StaffGalleryEntry(BaseModel):
    """One staff member's face vectors; an edge drops a face whose vector is close to one of them."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_name: Literal["StaffGalleryEntry.v1"] = Field("StaffGalleryEntry.v1", alias="schema")
    tenant_id: str = Field(pattern=TOKEN_PATTERN)
    staff_id: str = Field(pattern=TOKEN_PATTERN)
    display_name: str | None = Field(None, max_length=200)
    embedding_model: str = Field(min_length=1, max_length=128, description="Model id the vectors come from")
    embeddings: Annotated[list[Embedding], Field(min_length=1, max_length=MAX_STAFF_EMBEDDINGS)]
    updated_at: AwareDatetime = Field(default_factory=utc_now)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def staff_entry(
    tenant_id: str,
    staff_id: str,
    embedding_model: str,
    embeddings: list[list[float]],
    display_name: str | None = None,
    updated_at: datetime | None = None,
) -> StaffGalleryEntry:
    """A validated entry (the keyword form keeps mypy's pydantic plugin happy about the `schema` alias)."""
    return StaffGalleryEntry.model_validate(
        {
            "tenant_id": tenant_id,
            "staff_id": staff_id,
            "display_name": display_name,
            "embedding_model": embedding_model,
            "embeddings": embeddings,
            "updated_at": updated_at or utc_now(),
        }
    )
