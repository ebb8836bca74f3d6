"""The person lifecycle's rules: which steps an operation waits for, when it is done, paging cursors.
No I/O here.

An operation is identity's record of a merge, split or erasure. Identity does its own step in the
transaction that records the operation; every other owning service reports its step through
`OperationStepCompleted`, and the operation is completed when each expected step has been reported.
"""

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from schemas.lifecycle import MAX_CROP_KEYS


class OperationKind(StrEnum):
    MERGE = "merge"
    SPLIT = "split"
    ERASURE = "erasure"
    KIND_CHANGE = "kind_change"


class OperationStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class LifecycleError(ValueError):
    """A request that cannot be carried out as asked (the API answers 4xx with this reason)."""


class PersonNotFound(LifecycleError):
    pass


class PersonBusy(LifecycleError):
    """The person takes part in an operation still running: the next one waits until it completes, so every
    service applies a person's operations in the order identity started them."""


IDENTITY_STEP = "identity/persons"
"""Identity's own step, done in the transaction that records the operation."""
VECTOR_AND_VISIT_STEPS = ("matcher/vectors", "reporting/visits")


def expected_steps(kind: OperationKind, crop_batches: int = 0) -> list[str]:
    """The steps, `<service>/<step>`, an operation of `kind` is completed by. An erasure also waits for
    ingest to delete each batch of crops."""
    steps = [IDENTITY_STEP, *VECTOR_AND_VISIT_STEPS]
    if kind is OperationKind.ERASURE:
        steps += [f"ingest/crops/{batch}" for batch in range(crop_batches)]
    return steps


def batches_of(keys: Sequence[str], size: int = MAX_CROP_KEYS) -> list[list[str]]:
    """The crop keys in batches small enough for one event each; at least one batch, possibly empty,
    so every erasure has an ingest step."""
    return [list(keys[start : start + size]) for start in range(0, len(keys), size)] or [[]]


def status_after(expected: Sequence[str], completed: Sequence[str]) -> OperationStatus:
    return OperationStatus.COMPLETED if set(expected) <= set(completed) else OperationStatus.RUNNING


def validate_merge(person_id: uuid.UUID, merged: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """The persons to merge into `person_id`, without repeats; merging a person into itself is refused."""
    unique = list(dict.fromkeys(merged))
    if not unique:
        raise LifecycleError("person_ids is empty: name the persons to merge into this one")
    if person_id in unique:
        raise LifecycleError(f"cannot merge person {person_id} into itself")
    return unique


def validate_split(all_sightings: set[uuid.UUID], chosen: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """The sightings to split off: each must be the person's, and at least one must stay."""
    unique = list(dict.fromkeys(chosen))
    if not unique:
        raise LifecycleError("sighting_ids is empty: name the sightings to split off")
    foreign = [str(s) for s in unique if s not in all_sightings]
    if foreign:
        raise LifecycleError(f"not sightings of this person: {', '.join(foreign[:5])}")
    if len(unique) == len(all_sightings):
        raise LifecycleError("a split must leave the person at least one sighting")
    return unique


def ordered_pair(a: uuid.UUID, b: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    if a == b:
        raise LifecycleError("a person cannot be marked different from itself")
    return (a, b) if a.int < b.int else (b, a)


@dataclass(frozen=True)
class PageCursor:
    """Keyset paging: the position after the last item of a page (a time, and an id to break ties)."""

    at: datetime
    item_id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps({"at": self.at.isoformat(), "id": str(self.item_id)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "PageCursor":
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            return cls(datetime.fromisoformat(raw["at"]), uuid.UUID(raw["id"]))
        except (ValueError, KeyError, TypeError) as error:
            raise LifecycleError(f"invalid cursor: {error}") from error
