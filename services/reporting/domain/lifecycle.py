"""Reporting's step of the person lifecycle (merge, split, erasure, kind change): pure values, no I/O.

An operation's outcome is stored with it, so that a redelivered fact announces exactly the events the
first delivery announced, whatever happened to the sightings since.
"""

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from schemas import PersonKind
from services.reporting.domain.visits import PersonVisit, RemovedVisit, Visit, VisitChanges

STEP = "visits"
"""Reporting's step name in `OperationStepCompleted`."""

OperationKind = Literal["merge", "split", "erase", "kind_change"]


@dataclass(frozen=True)
class OperationOutcome:
    """What one operation changed here: the sightings moved or deleted, and the visits to announce."""

    operation_id: uuid.UUID
    kind: OperationKind
    person_id: uuid.UUID
    changed_sightings: int
    visits: VisitChanges
    completed_at: datetime
    person_kind: PersonKind | None = None
    """The kind a kind change gave the person (None for the other operations): the audit entry names it."""


def lock_order(persons: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Persons in the one order every transaction locks them in, so two never wait on each other in a cycle."""
    return sorted(set(persons))


def outcome_to_json(outcome: OperationOutcome) -> str:
    """The stored form of what to announce (the times of an erased person's visits are not kept: only ids)."""
    return json.dumps(
        {
            "changed_sightings": outcome.changed_sightings,
            "changed": [_visit_json(placed) for placed in outcome.visits.changed],
            "removed": [[r.site_id, str(r.person_id), str(r.visit_id)] for r in outcome.visits.removed],
            "person_kind": outcome.person_kind,
        }
    )


def outcome_from_json(
    operation_id: uuid.UUID, kind: OperationKind, person_id: uuid.UUID, text: str, completed_at: datetime
) -> OperationOutcome:
    stored = json.loads(text)
    changes = VisitChanges(
        changed=tuple(_visit_from(item) for item in stored["changed"]),
        removed=tuple(RemovedVisit(s, uuid.UUID(p), uuid.UUID(v)) for s, p, v in stored["removed"]),
    )
    person_kind = PersonKind(stored["person_kind"]) if stored.get("person_kind") else None
    return OperationOutcome(
        operation_id, kind, person_id, stored["changed_sightings"], changes, completed_at, person_kind
    )


def _visit_json(placed: PersonVisit) -> dict[str, Any]:
    visit = placed.visit
    return {
        "site_id": placed.site_id,
        "person_id": str(placed.person_id),
        "visit_id": str(visit.visit_id),
        "started_at": visit.started_at.isoformat(),
        "last_seen_at": visit.last_seen_at.isoformat(),
        "sightings": visit.sightings,
        "is_returning": visit.is_returning,
    }


def _visit_from(item: dict[str, Any]) -> PersonVisit:
    visit = Visit(
        uuid.UUID(item["visit_id"]),
        datetime.fromisoformat(item["started_at"]),
        datetime.fromisoformat(item["last_seen_at"]),
        item["sightings"],
        item["is_returning"],
    )
    return PersonVisit(item["site_id"], uuid.UUID(item["person_id"]), visit)
