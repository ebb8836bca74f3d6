import uuid
from collections.abc import Callable

import numpy as np

from schemas import PersonKind
from services.matcher.domain.assignment import Candidate, assign_batch, normalize, should_keep_vector

THRESHOLD = 0.4


def ids() -> Callable[[], uuid.UUID]:
    return lambda: uuid.uuid4()


def unit_vectors(rng: np.random.Generator, n: int, dim: int = 128) -> np.ndarray:
    return normalize(rng.normal(size=(n, dim)).astype(np.float32))


def noisy_copies(base: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    return normalize(base + noise * rng.normal(size=(n, base.shape[-1])).astype(np.float32))


def test_burst_of_one_new_face_becomes_one_person() -> None:
    rng = np.random.default_rng(1)
    burst = noisy_copies(unit_vectors(rng, 1)[0], 6, rng)
    result = assign_batch(burst, [None] * 6, {}, THRESHOLD, 5, 0.92, ids())
    assert len({a.person_id for a in result}) == 1
    assert [a.is_new_person for a in result] == [True, False, False, False, False, False]
    assert result[0].keep_vector


def test_different_new_faces_become_different_persons() -> None:
    rng = np.random.default_rng(2)
    faces = unit_vectors(rng, 4)
    result = assign_batch(faces, [None] * 4, {}, THRESHOLD, 5, 0.92, ids())
    assert len({a.person_id for a in result}) == 4
    assert all(a.is_new_person for a in result)


def test_stored_candidate_above_threshold_is_that_person() -> None:
    known = uuid.uuid4()
    vectors = unit_vectors(np.random.default_rng(3), 2)
    best = [Candidate(known, 0.55, PersonKind.STAFF), Candidate(known, 0.39, PersonKind.STAFF)]
    result = assign_batch(vectors, best, {known: 1}, THRESHOLD, 5, 0.92, ids())
    assert result[0].person_id == known and result[0].kind is PersonKind.STAFF and not result[0].is_new_person
    assert result[1].person_id != known and result[1].is_new_person


def test_vectors_per_person_are_bounded_and_diverse() -> None:
    assert should_keep_vector(stored=2, similarity=0.6, max_vectors=5, duplicate_similarity=0.92)
    assert not should_keep_vector(stored=5, similarity=0.6, max_vectors=5, duplicate_similarity=0.92)
    assert not should_keep_vector(stored=1, similarity=0.95, max_vectors=5, duplicate_similarity=0.92)


def test_batch_counts_vectors_it_keeps() -> None:
    known = uuid.uuid4()
    vectors = unit_vectors(np.random.default_rng(4), 3)
    best = [Candidate(known, 0.6, PersonKind.CUSTOMER)] * 3
    result = assign_batch(vectors, best, {known: 3}, THRESHOLD, 5, 0.92, ids())
    assert [a.keep_vector for a in result] == [True, True, False]
