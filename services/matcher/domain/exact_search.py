"""Exact nearest-neighbour search over one tenant's vectors of one embedding model, in memory. No I/O here.

Milvus keeps the vectors durably; the matcher searches a copy of the tenant's rows in a numpy matrix, because
a missed neighbour is a duplicate person: an approximate index (Milvus Lite's HNSW reached recall@1 0.96 at
100,000 512-d vectors) would split returning visitors, and Milvus Lite's exact (FLAT) search walks every row
in Python per call (about a second per batch at 100,000 rows on this machine), while one matrix product over
the same rows is the brute-force limit itself. `adapters.vector_index` keeps the copy in step with Milvus
across replicas.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from schemas import PersonKind
from services.matcher.domain.assignment import Candidate, Vectors

INITIAL_CAPACITY = 1024


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

    Rows live in a matrix that grows by doubling; a removed row is replaced by the last one, so the matrix
    stays dense and a search is one product over `len(self)` rows."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._matrix: Vectors = np.zeros((INITIAL_CAPACITY, dim), dtype=np.float32)
        self._rows: list[StoredVector] = []
        self._position: dict[uuid.UUID, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def put(self, rows: Iterable[StoredVector]) -> None:
        """Add rows, or replace those with the same sighting id (a relabel rewrites person and kind)."""
        for row in rows:
            vector = np.asarray(row.vector, dtype=np.float32)
            norm = float(np.linalg.norm(vector))
            if norm > 0:
                vector = vector / norm
            position = self._position.get(row.sighting_id)
            if position is None:
                position = len(self._rows)
                self._grow_to(position + 1)
                self._rows.append(row)
                self._position[row.sighting_id] = position
            else:
                self._rows[position] = row
            self._matrix[position] = vector

    def remove(self, sightings: Iterable[uuid.UUID]) -> None:
        for sighting in sightings:
            position = self._position.pop(sighting, None)
            if position is None:
                continue
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
        wanted = set(persons)
        found: dict[uuid.UUID, int] = {}
        for row in self._rows:
            if row.person_id in wanted:
                found[row.person_id] = found.get(row.person_id, 0) + 1
        return found

    def search(self, vectors: Vectors, limit: int) -> list[list[Candidate]]:
        """Per query row (L2-normalised), the best hit of each distinct person among its `limit` nearest rows,
        most similar first: exact cosine similarity over every row."""
        count = len(self._rows)
        if count == 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        similarities = vectors.astype(np.float32, copy=False) @ self._matrix[:count].T
        k = min(limit, count)
        nearest = (
            np.argpartition(-similarities, k - 1, axis=1)[:, :k]
            if k < count
            else np.tile(np.arange(count), (len(vectors), 1))
        )
        return [self._best_per_person(similarities[q], nearest[q]) for q in range(len(vectors))]

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
        grown = np.zeros((max(size, 2 * len(self._matrix)), self.dim), dtype=np.float32)
        grown[: len(self._rows)] = self._matrix[: len(self._rows)]
        self._matrix = grown
