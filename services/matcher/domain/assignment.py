"""Who is this face: an existing person, a person new in this batch, or a new person. No I/O here.

A burst of one new face arrives as several events in one batch (or in consecutive batches). Within a
batch, unmatched faces are clustered greedily against the new persons already created in the batch,
so a burst yields one person; across batches the store's strongly consistent search sees them.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from schemas import PersonKind

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Candidate:
    """The best stored match of one face."""

    person_id: uuid.UUID
    similarity: float
    kind: PersonKind


@dataclass(frozen=True)
class Assignment:
    person_id: uuid.UUID
    kind: PersonKind
    is_new_person: bool
    similarity: float | None
    keep_vector: bool


def normalize(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


def assign_batch(
    vectors: Vectors,
    best: Sequence[Candidate | None],
    stored_counts: dict[uuid.UUID, int],
    threshold: float,
    max_vectors_per_person: int,
    duplicate_similarity: float,
    new_person_id: Callable[[], uuid.UUID],
) -> list[Assignment]:
    """Assign each row of `vectors` (L2-normalised) given its best stored candidate."""
    counts = dict(stored_counts)
    new_persons: list[tuple[uuid.UUID, int]] = []  # (person, index of its first vector in this batch)
    assignments = []
    for index, candidate in enumerate(best):
        if candidate is not None and candidate.similarity >= threshold:
            keep = should_keep_vector(
                counts.get(candidate.person_id, 0), candidate.similarity, max_vectors_per_person, duplicate_similarity
            )
            assignment = Assignment(candidate.person_id, candidate.kind, False, candidate.similarity, keep)
        else:
            assignment = _assign_new(vectors, index, new_persons, threshold, new_person_id)
        if assignment.keep_vector:
            counts[assignment.person_id] = counts.get(assignment.person_id, 0) + 1
        assignments.append(assignment)
    return assignments


def _assign_new(
    vectors: Vectors,
    index: int,
    new_persons: list[tuple[uuid.UUID, int]],
    threshold: float,
    new_person_id: Callable[[], uuid.UUID],
) -> Assignment:
    """Join the most similar person created earlier in this batch, or start a new one."""
    if new_persons:
        firsts = vectors[[first for _, first in new_persons]]
        similarities = firsts @ vectors[index]
        nearest = int(np.argmax(similarities))
        if similarities[nearest] >= threshold:
            person_id = new_persons[nearest][0]
            return Assignment(person_id, PersonKind.CUSTOMER, False, float(similarities[nearest]), keep_vector=False)
    person_id = new_person_id()
    new_persons.append((person_id, index))
    return Assignment(person_id, PersonKind.CUSTOMER, True, None, keep_vector=True)


def should_keep_vector(stored: int, similarity: float, max_vectors: int, duplicate_similarity: float) -> bool:
    """Keep a bounded, diverse set per person: not when full, not when nearly identical to a kept one."""
    return stored < max_vectors and similarity < duplicate_similarity
