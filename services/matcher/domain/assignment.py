"""Who is this face: an existing person, a person new in this batch, or a new person. No I/O here.

A burst of one new face arrives as several events in one batch (or in consecutive batches). Within a
batch, unmatched faces are clustered greedily against the new persons already created in the batch,
so a burst yields one person; across batches the store's strongly consistent search sees them.

Enrolment asks more of a face than recognition: a face that may not enrol (below the matcher's enrolment
floor) can join a person whose vectors it matches, but never starts a person and never adds a vector.
Two degraded faces look alike whoever they show (on the motion benchmark, blurred 60 px faces of
different people reached 0.49), so a person started from one would collect strangers.

A face whose best person is only just above the threshold (within the ambiguous band) is not joined to it
silently: it starts a provisional person (if it may enrol) that names the candidate in `ambiguous_with`, so
an operator decides (a merge accepts, not-same rejects). A wrong join is costly to find afterwards; a
provisional person waiting in the duplicate suggestions is cheap to accept.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

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
    """To the person joined; for a provisional person, to the candidate it was not joined to; else None."""
    keep_vector: bool
    ambiguous_with: uuid.UUID | None = None
    """The candidate a provisional person may be: the pair is a duplicate suggestion."""


class Verdict(Enum):
    """How a face stands to its best candidate."""

    MATCH = "match"
    AMBIGUOUS = "ambiguous"
    NO_MATCH = "no_match"


def match_verdict(similarity: float, threshold: float, band: float) -> Verdict:
    """At or above `threshold + band` a match; in [threshold, threshold + band) ambiguous; below, no match.

    A band of 0 is the plain threshold rule."""
    if similarity < threshold:
        return Verdict.NO_MATCH
    return Verdict.AMBIGUOUS if similarity < threshold + band else Verdict.MATCH


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
    can_enrol: Sequence[bool] | None = None,
    *,
    ambiguous_band: float = 0.0,
) -> list[Assignment | None]:
    """Assign each row of `vectors` (L2-normalised) given its best stored candidate.

    None for a face that may not enrol (`can_enrol`, default all may) and matches nobody, or only ambiguously:
    an unidentified sighting. The band applies alike to stored persons and to persons new in this batch, so
    the decision does not depend on how faces were batched.
    """
    counts = dict(stored_counts)
    new_persons: list[tuple[uuid.UUID, int]] = []  # (person, index of its first vector in this batch)
    assignments: list[Assignment | None] = []
    for index, candidate in enumerate(best):
        enrols = can_enrol is None or can_enrol[index]
        assignment: Assignment | None
        stored_verdict = (
            Verdict.NO_MATCH if candidate is None else match_verdict(candidate.similarity, threshold, ambiguous_band)
        )
        if candidate is not None and stored_verdict is Verdict.MATCH:
            keep = enrols and should_keep_vector(
                counts.get(candidate.person_id, 0), candidate.similarity, max_vectors_per_person, duplicate_similarity
            )
            assignment = Assignment(candidate.person_id, candidate.kind, False, candidate.similarity, keep)
        else:
            ambiguous = candidate if stored_verdict is Verdict.AMBIGUOUS else None
            assignment = _assign_new(
                vectors, index, new_persons, threshold, ambiguous_band, new_person_id, enrols, ambiguous
            )
        if assignment is not None and assignment.keep_vector:
            counts[assignment.person_id] = counts.get(assignment.person_id, 0) + 1
        assignments.append(assignment)
    return assignments


def _assign_new(
    vectors: Vectors,
    index: int,
    new_persons: list[tuple[uuid.UUID, int]],
    threshold: float,
    band: float,
    new_person_id: Callable[[], uuid.UUID],
    enrols: bool,
    ambiguous: Candidate | None,
) -> Assignment | None:
    """Join the most similar person created earlier in this batch, or start a new one if the face may enrol;
    the new one is provisional when a person (stored, `ambiguous`, or new in this batch) is within the band."""
    if new_persons:
        firsts = vectors[[first for _, first in new_persons]]
        similarities = firsts @ vectors[index]
        nearest = int(np.argmax(similarities))
        similarity = float(similarities[nearest])
        verdict = match_verdict(similarity, threshold, band)
        if verdict is Verdict.MATCH:
            return Assignment(new_persons[nearest][0], PersonKind.CUSTOMER, False, similarity, keep_vector=False)
        if verdict is Verdict.AMBIGUOUS and (ambiguous is None or similarity > ambiguous.similarity):
            ambiguous = Candidate(new_persons[nearest][0], similarity, PersonKind.CUSTOMER)
    if not enrols:
        return None
    person_id = new_person_id()
    new_persons.append((person_id, index))
    if ambiguous is None:
        return Assignment(person_id, PersonKind.CUSTOMER, True, None, keep_vector=True)
    return Assignment(
        person_id, PersonKind.CUSTOMER, True, ambiguous.similarity, keep_vector=True, ambiguous_with=ambiguous.person_id
    )


def should_keep_vector(stored: int, similarity: float, max_vectors: int, duplicate_similarity: float) -> bool:
    """Keep a bounded, diverse set per person: not when full, not when nearly identical to a kept one."""
    return stored < max_vectors and similarity < duplicate_similarity
