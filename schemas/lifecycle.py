"""The person lifecycle: merge, split and erasure sagas, and "not the same" pairs.

Identity initiates every change (STYLE rule 12): it records an operation, changes its own store and
publishes one fact on `identity.<fact>.<tenant>`. Each owning service (matcher: vectors, reporting:
sightings and visits, ingest: crops) does its own step in its own handler, idempotently on
(operation_id, step), and publishes `OperationStepCompleted` on `operations.<service>.<tenant>`.
Identity advances the operation from those events until every step is done.

Events carry ids only, never a face, a vector or a crop.
"""

import uuid
from typing import Literal

from pydantic import Field

from schemas.base import Event
from schemas.faces import PersonKind

MAX_CROP_KEYS = 500
"""Crop keys per `CropsErasureRequested`: an erasure of a person with more sightings sends several."""


class PersonsMerged(Event):
    """`merged_person_ids` are now `person_id`; published on `identity.persons_merged.<tenant>`.

    Matcher relabels their vectors, reporting moves their sightings and recomputes visits."""

    schema_name: Literal["PersonsMerged.v1"] = Field("PersonsMerged.v1", alias="schema")
    operation_id: uuid.UUID
    person_id: uuid.UUID = Field(description="The person that remains")
    merged_person_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


class PersonSplit(Event):
    """The sightings `sighting_ids` of `person_id` now belong to `new_person_id` (a new person, or the person a
    merge had joined, when a merge is undone); published on `identity.person_split.<tenant>`.

    A sighting id is the `FaceMatched.source_event_id` (the `FaceIngested` event id), which is also the
    primary key of the sighting's vector in the matcher and of the sighting in reporting."""

    schema_name: Literal["PersonSplit.v1"] = Field("PersonSplit.v1", alias="schema")
    operation_id: uuid.UUID
    person_id: uuid.UUID
    new_person_id: uuid.UUID
    sighting_ids: list[uuid.UUID] = Field(min_length=1, max_length=10000)


class PersonErased(Event):
    """Erase everything held about `person_id`; published on `identity.person_erased.<tenant>`.

    Matcher deletes its vectors, reporting its sightings and visits (and announces the removed visits).
    The crops are erased through `CropsErasureRequested`, which names them."""

    schema_name: Literal["PersonErased.v1"] = Field("PersonErased.v1", alias="schema")
    operation_id: uuid.UUID
    person_id: uuid.UUID


class CropsErasureRequested(Event):
    """Delete these crops (one batch of an erasure); published on `identity.crops_erasure_requested.<tenant>`.
    Ingest deletes them (a missing crop counts as deleted) and completes step `crops/<batch>`."""

    schema_name: Literal["CropsErasureRequested.v1"] = Field("CropsErasureRequested.v1", alias="schema")
    operation_id: uuid.UUID
    person_id: uuid.UUID
    batch: int = Field(ge=0)
    batches: int = Field(ge=1)
    crop_keys: list[str] = Field(max_length=MAX_CROP_KEYS)


class PersonsMarkedDifferent(Event):
    """An operator said these two persons are not the same: the matcher never joins a face of one to the
    other and they are never suggested as duplicates; published on `identity.persons_marked_different.<tenant>`."""

    schema_name: Literal["PersonsMarkedDifferent.v1"] = Field("PersonsMarkedDifferent.v1", alias="schema")
    person_id: uuid.UUID
    other_person_id: uuid.UUID


class PersonKindChanged(Event):
    """An admin marked `person_id` as staff, or as a customer again; published on
    `identity.person_kind_changed.<tenant>`. Matcher relabels the kind of its vectors (later matches carry
    it), reporting re-attributes the person's visits: a staff member's visits leave every count, a
    customer's come back."""

    schema_name: Literal["PersonKindChanged.v1"] = Field("PersonKindChanged.v1", alias="schema")
    operation_id: uuid.UUID
    person_id: uuid.UUID
    kind: PersonKind


class OperationStepCompleted(Event):
    """A service finished its step of an operation; published on `operations.<service>.<tenant>`.

    The event id is derived from (operation_id, service, step), so a repeated step announces the same event."""

    schema_name: Literal["OperationStepCompleted.v1"] = Field("OperationStepCompleted.v1", alias="schema")
    operation_id: uuid.UUID
    service: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    step: str = Field(pattern=r"^[a-z][a-z0-9_/-]{0,63}$", description="e.g. vectors, visits, crops/0")
    changed: int = Field(0, ge=0, description="How many records the step changed (vectors, sightings, crops)")
