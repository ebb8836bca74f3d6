import uuid

import numpy as np
import pytest

from services.matcher.domain import duplicates
from services.matcher.domain.assignment import normalize
from services.matcher.domain.duplicates import DuplicatePair, closest_pairs, rank_duplicates, standing_pairs
from services.matcher.domain.not_same import person_pair

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def axes(*rows: list[float]) -> np.ndarray:
    return normalize(np.asarray([row + [0.0] * (64 - len(row)) for row in rows], dtype=np.float32))


def test_pairs_of_persons_by_their_closest_vectors() -> None:
    vectors = axes([1, 0, 0], [0, 0, 1], [0.8, 0.6, 0], [0, 1, 0], [0, 0.1, 1])
    persons = [A, A, B, B, C]
    pairs = closest_pairs(persons, vectors, 0.5)
    assert pairs.keys() == {person_pair(A, B), person_pair(A, C)}
    assert abs(pairs[person_pair(A, B)] - 0.8) < 1e-5  # not the other vectors' 0.6
    assert pairs[person_pair(A, C)] > 0.99


def test_blocks_give_the_same_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    persons = [uuid.uuid4() for _ in range(10) for _ in range(3)]
    vectors = normalize(rng.normal(size=(30, 8)).astype(np.float32))
    whole = closest_pairs(persons, vectors, 0.3)
    monkeypatch.setattr(duplicates, "BLOCK_CELLS", 7)  # blocks of one row
    blocked = closest_pairs(persons, vectors, 0.3)
    assert blocked.keys() == whole.keys()
    assert all(abs(blocked[pair] - whole[pair]) < 1e-5 for pair in whole)  # float32 sums differ in the last bit


def test_ranking_drops_not_same_pairs_keeps_the_best_model_and_limits() -> None:
    one_model = {person_pair(A, B): 0.8, person_pair(A, C): 0.7}
    other_model = {person_pair(A, B): 0.9, person_pair(B, C): 0.6}
    ranked = rank_duplicates([one_model, other_model], {person_pair(C, A)}, limit=5)
    first, second = person_pair(A, B), person_pair(B, C)
    assert ranked == [DuplicatePair(*first, 0.9), DuplicatePair(*second, 0.6)]
    assert rank_duplicates([one_model, other_model], set(), limit=1) == [DuplicatePair(*first, 0.9)]


def test_ambiguous_pairs_are_ranked_among_the_others_and_flagged_whatever_their_similarity() -> None:
    found = {person_pair(A, B): 0.8}
    ambiguous = {person_pair(A, C): 0.42, person_pair(B, C): 0.41}
    ranked = rank_duplicates([found], {person_pair(B, C)}, limit=5, ambiguous=ambiguous)
    assert ranked == [DuplicatePair(*person_pair(A, B), 0.8), DuplicatePair(*person_pair(A, C), 0.42, True)]


def test_an_ambiguous_pair_also_found_by_its_vectors_is_one_flagged_pair() -> None:
    pair = person_pair(A, C)
    assert rank_duplicates([{pair: 0.4201}], set(), limit=5, ambiguous={pair: 0.42}) == [
        DuplicatePair(*pair, 0.4201, True)
    ]


def test_recorded_pairs_stand_while_both_persons_are_customers_with_vectors() -> None:
    """After a merge or an erasure one of the two has no vector left; after a relabelling it is staff."""
    recorded = {person_pair(A, B): 0.42, person_pair(A, C): 0.43}
    assert standing_pairs(recorded, {A, B}) == {person_pair(A, B): 0.42}
