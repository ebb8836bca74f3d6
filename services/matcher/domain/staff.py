"""Staff recognised on the server: a face close to a staff vector of its tenant is staff. No I/O here.

Edges drop staff faces themselves, but an edge with a stale gallery (or none) publishes them; the matcher
marks them staff so they are never counted as visitors nor stored as persons.

A staff member's person id is deterministic, so every replica and every redelivery names the same one:
`derive_event_id(uuid5(STAFF_PERSON_NAMESPACE, tenant_id), "staff/<staff_id>")`.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from schemas.ids import derive_event_id
from schemas.staff import StaffGalleryEntry
from services.matcher.domain.assignment import Vectors, normalize

STAFF_PERSON_NAMESPACE = uuid.UUID("5b0e8f4e-3c7a-4d61-9a4f-2f1d6c9e7a10")
"""Namespace of staff person ids (uuid5 of the tenant id); never change it, ids already published use it."""


def staff_person_id(tenant_id: str, staff_id: str) -> uuid.UUID:
    return derive_event_id(uuid.uuid5(STAFF_PERSON_NAMESPACE, tenant_id), f"staff/{staff_id}")


@dataclass(frozen=True)
class StaffVectors:
    """The staff vectors of one tenant and embedding model, L2-normalised, with the staff id of each row."""

    staff_ids: list[str]
    vectors: Vectors


@dataclass(frozen=True)
class StaffMatch:
    staff_id: str
    similarity: float


def staff_vectors(entries: Iterable[StaffGalleryEntry]) -> StaffVectors | None:
    """One matrix of the entries' vectors (all of one tenant and model); None when there are none."""
    staff_ids: list[str] = []
    rows: list[list[float]] = []
    for entry in entries:
        staff_ids.extend([entry.staff_id] * len(entry.embeddings))
        rows.extend(entry.embeddings)
    if not rows:
        return None
    return StaffVectors(staff_ids, normalize(np.asarray(rows, dtype=np.float32)))


def best_staff_match(vector: Vectors, gallery: StaffVectors | None, threshold: float) -> StaffMatch | None:
    """The most similar staff member of an L2-normalised face vector, if at or above `threshold`."""
    if gallery is None or gallery.vectors.shape[1] != vector.shape[0]:
        return None
    similarities = gallery.vectors @ vector
    nearest = int(np.argmax(similarities))
    if similarities[nearest] < threshold:
        return None
    return StaffMatch(gallery.staff_ids[nearest], float(similarities[nearest]))
