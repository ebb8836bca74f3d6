"""Exact nearest-neighbour search over one tenant's vectors of one embedding model, in memory. No I/O here.

Milvus keeps the vectors durably; the matcher searches a copy of the tenant's rows in a numpy matrix, because
a missed neighbour is a duplicate person: an approximate index (Milvus Lite's HNSW reached recall@1 0.96 at
100,000 512-d vectors) would split returning visitors, and Milvus Lite's exact (FLAT) search walks every row
in Python per call (about a second per batch at 100,000 rows on this machine), while one matrix product over
the same rows is the brute-force limit itself. `adapters.vector_index` keeps the copy in step with Milvus
across replicas.
"""

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from schemas import PersonKind
from services.matcher.domain.assignment import Candidate, Vectors

INITIAL_CAPACITY = 1024
GROWTH = 1.25
"""A full matrix grows by a quarter: a doubling left a loaded 100,000-row tenant holding room for 200,000 after its
first new face, and copying the rows a few more times costs milliseconds."""


@dataclass(frozen=True)
class StoredVector:
    """One kept face vector: its primary key is the sighting (event) id that brought it."""

    sighting_id: uuid.UUID
    person_id: uuid.UUID
    tenant_id: str
    kind: PersonKind
    captured_at_ms: int
    vector: list[float]


class TenantVectors:
    """The rows of one tenant and model: vectors (L2-normalised) and who each belongs to, by sighting id.

    Rows live in a matrix that grows by a quarter when full; a removed row is replaced by the last one, so the matrix
    stays dense and a search is one product over `len(self)` rows. The rows' own vector lists are not kept
    (the matrix holds them), and vectors per person are counted as rows come and go."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._matrix: Vectors = np.zeros((INITIAL_CAPACITY, dim), dtype=np.float32)
        self._rows: list[StoredVector] = []
        self._position: dict[uuid.UUID, int] = {}
        self._per_person: Counter[uuid.UUID] = Counter()

    def __len__(self) -> int:
        return len(self._rows)

    def put(self, rows: Sequence[StoredVector], vectors: Vectors | None = None) -> None:
        """Add rows, or replace those with the same sighting id (a relabel rewrites person and kind). Their vectors
        are `vectors` (one row each) when given, else each row's own."""
        if not rows:
            return
        matrix = np.asarray([row.vector for row in rows] if vectors is None else vectors, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.maximum(norms, 1e-12)
        self._grow_to(len(self._rows) + len(rows))
        for row, vector in zip(rows, matrix, strict=True):
            kept = replace(row, vector=[]) if row.vector else row  # a loaded row comes without its list
            position = self._position.get(row.sighting_id)
            if position is None:
                position = len(self._rows)
                self._rows.append(kept)
                self._position[row.sighting_id] = position
            else:
                self._per_person[self._rows[position].person_id] -= 1
                self._rows[position] = kept
            self._per_person[row.person_id] += 1
            self._matrix[position] = vector

    def remove(self, sightings: Iterable[uuid.UUID]) -> None:
        for sighting in sightings:
            position = self._position.pop(sighting, None)
            if position is None:
                continue
            self._per_person[self._rows[position].person_id] -= 1
            last = len(self._rows) - 1
            if position != last:
                moved = self._rows[last]
                self._rows[position] = moved
                self._matrix[position] = self._matrix[last]
                self._position[moved.sighting_id] = position
            self._rows.pop()

    def stored(self, sightings: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredVector]:
        """The rows of these sightings that are kept (a redelivered face whose decision was not recorded)."""
        return {s: self._rows[self._position[s]] for s in sightings if s in self._position}

    def counts(self, persons: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Vectors kept per person, for the persons asked about that have any."""
        return {person: self._per_person[person] for person in set(persons) if self._per_person[person] > 0}

    def search(self, vectors: Vectors, limit: int, floor: float = -1.0) -> list[list[Candidate]]:
        """Per query row (L2-normalised), the best hit of each distinct person among its `limit` nearest rows at
        or above `floor`, most similar first: exact cosine similarity over every row.

        A caller whose decisions ignore hits below some similarity passes it as `floor`: picking the nearest
        `limit` of every row costs twice the matrix product itself at 100,000 rows, and even one pass for the
        positions at or above the floor over the whole (queries x rows) product cost 50 ms of CPU per 256 queries
        there (a 100 MB mask); the best similarity of each query is one fast reduction, and only the queries whose
        best reaches the floor (returning faces) are scanned for their hits."""
        count = len(self._rows)
        if count == 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        similarities = vectors.astype(np.float32, copy=False) @ self._matrix[:count].T
        if floor <= -1.0:  # every row qualifies: the nearest `limit` of each
            k = min(limit, count)
            nearest = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
            return [self._best_per_person(similarities[q], nearest[q]) for q in range(len(vectors))]
        found: list[list[Candidate]] = [[] for _ in range(len(vectors))]
        reaching = np.flatnonzero(similarities.max(axis=1) >= floor)
        for query in reaching.tolist():
            row = similarities[query]
            hits = np.flatnonzero(row >= floor)
            if len(hits) > limit:
                hits = hits[np.argpartition(-row[hits], limit - 1)[:limit]]
            found[query] = self._best_per_person(row, hits)
        return found

    def _best_per_person(self, similarities: np.ndarray, nearest: np.ndarray) -> list[Candidate]:
        best: dict[uuid.UUID, Candidate] = {}
        for position in nearest.tolist():
            row, similarity = self._rows[position], float(similarities[position])
            if row.person_id not in best or similarity > best[row.person_id].similarity:
                best[row.person_id] = Candidate(row.person_id, similarity, row.kind)
        return sorted(best.values(), key=lambda candidate: candidate.similarity, reverse=True)

    def _grow_to(self, size: int) -> None:
        if size <= len(self._matrix):
            return
        grown = np.zeros((max(size, int(GROWTH * len(self._matrix)) + INITIAL_CAPACITY), self.dim), dtype=np.float32)
        grown[: len(self._rows)] = self._matrix[: len(self._rows)]
        self._matrix = grown
