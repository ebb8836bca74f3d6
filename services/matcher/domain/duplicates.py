"""Duplicate suggestions: pairs of persons whose closest vectors are near-identical. No I/O here.

Exact: every vector against every other (one embedding model at a time), computed in blocks of rows sized
so that one block of similarities stays about 64 MB whatever the tenant's vector count.

Beside them, the ambiguous matches the matcher recorded (a provisional person and the person it was only
just similar to) are suggested whatever `min_similarity` asks: they are decisions the matcher left to an
operator, not a search result.
"""

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from services.matcher.domain.assignment import Vectors
from services.matcher.domain.not_same import PersonPair, person_pair

BLOCK_CELLS = 16_000_000
"""Similarities computed at once (64 MB of float32)."""


@dataclass(frozen=True)
class DuplicatePair:
    person_id: uuid.UUID
    other_person_id: uuid.UUID
    similarity: float
    ambiguous_match: bool = False
    """The matcher started `person_id` or `other_person_id` as a provisional person instead of joining the other."""


def closest_pairs(persons: Sequence[uuid.UUID], vectors: Vectors, min_similarity: float) -> dict[PersonPair, float]:
    """For each pair of different persons whose closest vectors reach `min_similarity`, that similarity.

    `persons[i]` owns row i of `vectors` (L2-normalised, one embedding model)."""
    if len(persons) < 2:
        return {}
    distinct = sorted(set(persons), key=str)
    code_of = {person: code for code, person in enumerate(distinct)}
    codes = np.asarray([code_of[person] for person in persons], dtype=np.int64)
    block = max(1, BLOCK_CELLS // len(persons))
    best: dict[PersonPair, float] = {}
    for start in range(0, len(persons), block):
        similarities = vectors[start : start + block] @ vectors.T
        rows, cols = np.nonzero(similarities >= min_similarity)
        first, second = codes[rows + start], codes[cols]
        keep = first < second  # different persons, each unordered pair once
        for a, b, similarity in zip(first[keep], second[keep], similarities[rows[keep], cols[keep]], strict=True):
            pair = person_pair(distinct[a], distinct[b])
            best[pair] = max(best.get(pair, -1.0), float(similarity))
    return best


def standing_pairs(recorded: Mapping[PersonPair, float], customers: Collection[uuid.UUID]) -> dict[PersonPair, float]:
    """The recorded ambiguous pairs whose two persons are still customers with vectors: a merge, an erasure or a
    relabelling to staff resolved the others."""
    return {pair: similarity for pair, similarity in recorded.items() if pair[0] in customers and pair[1] in customers}


def rank_duplicates(
    found: Iterable[dict[PersonPair, float]],
    not_same: Collection[PersonPair],
    limit: int,
    ambiguous: Mapping[PersonPair, float] | None = None,
) -> list[DuplicatePair]:
    """Most similar first, across embedding models (a pair's best model counts), with the `ambiguous` pairs
    flagged, without not-same pairs."""
    ambiguous = ambiguous or {}
    best: dict[PersonPair, float] = {}
    for pairs in [*found, ambiguous]:
        for pair, similarity in pairs.items():
            if pair not in not_same:
                best[pair] = max(best.get(pair, -1.0), similarity)
    ranked = sorted(best.items(), key=lambda item: (-item[1], str(item[0][0]), str(item[0][1])))
    return [DuplicatePair(a, b, round(similarity, 6), (a, b) in ambiguous) for (a, b), similarity in ranked[:limit]]
