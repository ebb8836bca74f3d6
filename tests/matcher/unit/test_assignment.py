import uuid
from collections.abc import Callable

import numpy as np

from schemas import PersonKind
from services.matcher.domain.assignment import Assignment, Candidate, assign_batch, normalize, should_keep_vector

THRESHOLD = 0.4


def ids() -> Callable[[], uuid.UUID]:
    return lambda: uuid.uuid4()


def unit_vectors(rng: np.random.Generator, n: int, dim: int = 128) -> np.ndarray:
    return normalize(rng.normal(size=(n, dim)).astype(np.float32))


def noisy_copies(base: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    return normalize(base + noise * rng.normal(size=(n, base.shape[-1])).astype(np.float32))


def everyone_assigned(results: list[Assignment | None]) -> list[Assignment]:
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def test_burst_of_one_new_face_becomes_one_person() -> None:
    rng = np.random.default_rng(1)
    burst = noisy_copies(unit_vectors(rng, 1)[0], 6, rng)
    result = everyone_assigned(assign_batch(burst, [None] * 6, {}, THRESHOLD, 5, 0.92, ids()))
    assert len({a.person_id for a in result}) == 1
    assert [a.is_new_person for a in result] == [True, False, False, False, False, False]
    assert result[0].keep_vector


def test_different_new_faces_become_different_persons() -> None:
    rng = np.random.default_rng(2)
    faces = unit_vectors(rng, 4)
    result = everyone_assigned(assign_batch(faces, [None] * 4, {}, THRESHOLD, 5, 0.92, ids()))
    assert len({a.person_id for a in result}) == 4
    assert all(a.is_new_person for a in result)


def test_stored_candidate_above_threshold_is_that_person() -> None:
    known = uuid.uuid4()
    vectors = unit_vectors(np.random.default_rng(3), 2)
    best = [Candidate(known, 0.55, PersonKind.STAFF), Candidate(known, 0.39, PersonKind.STAFF)]
    result = everyone_assigned(assign_batch(vectors, best, {known: 1}, THRESHOLD, 5, 0.92, ids()))
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
    result = everyone_assigned(assign_batch(vectors, best, {known: 3}, THRESHOLD, 5, 0.92, ids()))
    assert [a.keep_vector for a in result] == [True, True, False]


def test_a_face_that_may_not_enrol_joins_a_known_person_without_adding_a_vector() -> None:
    known = uuid.uuid4()
    vectors = unit_vectors(np.random.default_rng(5), 1)
    [result] = assign_batch(
        vectors, [Candidate(known, 0.6, PersonKind.CUSTOMER)], {known: 1}, THRESHOLD, 5, 0.92, ids(), can_enrol=[False]
    )
    assert result is not None and result.person_id == known and not result.keep_vector


def test_a_face_that_may_not_enrol_and_matches_nobody_is_unidentified() -> None:
    rng = np.random.default_rng(6)
    stranger, weak_stranger = unit_vectors(rng, 2)
    result = assign_batch(
        np.stack([stranger, weak_stranger]), [None, None], {}, THRESHOLD, 5, 0.92, ids(), can_enrol=[True, False]
    )
    assert result[0] is not None and result[0].is_new_person
    assert result[1] is None


def test_a_face_that_may_not_enrol_joins_a_person_started_earlier_in_its_batch() -> None:
    rng = np.random.default_rng(7)
    good, weak = noisy_copies(unit_vectors(rng, 1)[0], 2, rng)
    first, second = assign_batch(
        np.stack([good, weak]), [None, None], {}, THRESHOLD, 5, 0.92, ids(), can_enrol=[True, False]
    )
    assert first is not None and second is not None
    assert second.person_id == first.person_id and not second.is_new_person and not second.keep_vector


def test_order_matters_only_for_who_starts_the_person() -> None:
    """The weak face first: it may not start the person, so the good face after it does."""
    rng = np.random.default_rng(8)
    weak, good = noisy_copies(unit_vectors(rng, 1)[0], 2, rng)
    first, second = assign_batch(
        np.stack([weak, good]), [None, None], {}, THRESHOLD, 5, 0.92, ids(), can_enrol=[False, True]
    )
    assert first is None
    assert second is not None and second.is_new_person
