import uuid

from schemas import PersonKind
from services.matcher.domain.assignment import Candidate
from services.matcher.domain.not_same import decisive_candidate, person_pair

P, Q, R = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def candidate(person: uuid.UUID, similarity: float) -> Candidate:
    return Candidate(person, similarity, PersonKind.CUSTOMER)


def test_a_pair_is_the_same_whichever_way_round() -> None:
    assert person_pair(P, Q) == person_pair(Q, P)


def test_without_not_same_pairs_the_best_candidate_decides() -> None:
    assert decisive_candidate([candidate(P, 0.7), candidate(Q, 0.69)], set()) == candidate(P, 0.7)


def test_a_person_marked_different_within_the_margin_vetoes_the_match() -> None:
    assert decisive_candidate([candidate(P, 0.7), candidate(Q, 0.66)], {person_pair(P, Q)}) is None


def test_a_person_marked_different_further_than_the_margin_does_not() -> None:
    assert decisive_candidate([candidate(P, 0.7), candidate(Q, 0.64)], {person_pair(Q, P)}) == candidate(P, 0.7)


def test_only_pairs_with_the_best_candidate_count() -> None:
    candidates = [candidate(P, 0.7), candidate(R, 0.69), candidate(Q, 0.68)]
    assert decisive_candidate(candidates, {person_pair(R, Q)}) == candidate(P, 0.7)
    assert decisive_candidate(candidates, {person_pair(P, Q)}) is None


def test_no_candidate_is_no_match() -> None:
    assert decisive_candidate([], {person_pair(P, Q)}) is None
