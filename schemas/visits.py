"""Visits derived by reporting from matched sightings."""

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.base import Event
from schemas.faces import Token


class VisitRecord(Event):
    """The current state of one visit, published on `visits.<tenant>.<site>` whenever it changes."""

    schema_name: Literal["VisitRecord.v1"] = Field("VisitRecord.v1", alias="schema")
    visit_id: uuid.UUID
    site_id: Token
    person_id: uuid.UUID
    started_at: AwareDatetime
    last_seen_at: AwareDatetime
    sightings: int = Field(ge=1)
    is_returning: bool = Field(description="The person had an earlier visit at this site within the lookback")


class VisitRemoved(Event):
    """A visit that no longer exists (its person was merged, split or erased, or its sightings regrouped);
    published on `visits.<tenant>.<site>`. A consumer drops it; a visit announced again later is new."""

    schema_name: Literal["VisitRemoved.v1"] = Field("VisitRemoved.v1", alias="schema")
    visit_id: uuid.UUID
    site_id: Token
    person_id: uuid.UUID = Field(description="The person the visit belonged to")
