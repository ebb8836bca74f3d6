"""The ambiguous band: a face only just above the threshold starts a provisional person naming its candidate."""

import uuid

import numpy as np

from schemas import PersonKind
from services.matcher.domain.assignment import Candidate, Verdict, assign_batch, match_verdict, normalize

THRESHOLD, BAND = 0.4, 0.05


def axis_mix(*weights: float, dim: int = 16) -> np.ndarray:
    """A unit vector from weights on the first axes, so similarities between faces are set exactly."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[: len(weights)] = weights
    result: np.ndarray = normalize(vector[None, :])[0]
    return result


def test_the_band_is_closed_below_and_open_above() -> None:
    assert match_verdict(0.3999, THRESHOLD, BAND) is Verdict.NO_MATCH
    assert match_verdict(0.40, THRESHOLD, BAND) is Verdict.AMBIGUOUS
    assert match_verdict(0.4499, THRESHOLD, BAND) is Verdict.AMBIGUOUS
    assert match_verdict(0.45, THRESHOLD, BAND) is Verdict.MATCH


def test_a_band_of_zero_is_the_plain_threshold() -> None:
    assert match_verdict(0.40, THRESHOLD, 0.0) is Verdict.MATCH
    assert match_verdict(0.39, THRESHOLD, 0.0) is Verdict.NO_MATCH


def test_a_face_in_the_band_starts_a_provisional_person_that_names_its_candidate() -> None:
    known = uuid.uuid4()
    [result] = assign_batch(
        axis_mix(1)[None, :], [Candidate(known, 0.42, PersonKind.CUSTOMER)], {known: 1}, THRESHOLD, 5, 0.92,
        uuid.uuid4, ambiguous_band=BAND,
    )  # fmt: skip
    assert result is not None and result.person_id != known
    assert result.is_new_person and result.keep_vector
    assert result.ambiguous_with == known and result.similarity == 0.42


def test_a_face_well_above_the_band_joins_its_person() -> None:
    known = uuid.uuid4()
    [result] = assign_batch(
        axis_mix(1)[None, :], [Candidate(known, 0.6, PersonKind.CUSTOMER)], {known: 1}, THRESHOLD, 5, 0.92,
        uuid.uuid4, ambiguous_band=BAND,
    )  # fmt: skip
    assert result is not None and result.person_id == known and not result.is_new_person
    assert result.ambiguous_with is None


def test_a_face_in_the_band_that_may_not_enrol_is_unidentified() -> None:
    known = uuid.uuid4()
    [result] = assign_batch(
        axis_mix(1)[None, :], [Candidate(known, 0.42, PersonKind.CUSTOMER)], {known: 1}, THRESHOLD, 5, 0.92,
        uuid.uuid4, [False], ambiguous_band=BAND,
    )  # fmt: skip
    assert result is None


def test_a_face_below_the_threshold_is_a_plain_new_person() -> None:
    known = uuid.uuid4()
    [result] = assign_batch(
        axis_mix(1)[None, :], [Candidate(known, 0.3, PersonKind.CUSTOMER)], {}, THRESHOLD, 5, 0.92,
        uuid.uuid4, ambiguous_band=BAND,
    )  # fmt: skip
    assert result is not None and result.is_new_person
    assert result.ambiguous_with is None and result.similarity is None


def test_the_band_applies_to_persons_new_in_the_batch_too() -> None:
    """0.42 to the face that started a person earlier in the batch: not joined, a provisional person instead,
    as it would have been had the two faces come in separate batches."""
    first, second = axis_mix(1, 0), axis_mix(0.42, np.sqrt(1 - 0.42**2))
    a, b = assign_batch(
        np.stack([first, second]), [None, None], {}, THRESHOLD, 5, 0.92, uuid.uuid4, ambiguous_band=BAND
    )
    assert a is not None and b is not None and b.person_id != a.person_id
    assert b.is_new_person and b.ambiguous_with == a.person_id and abs((b.similarity or 0) - 0.42) < 1e-5


def test_a_later_face_clearly_of_the_provisional_person_joins_it() -> None:
    """The provisional person is a person: its own faces (0.9 to it) join it, not the candidate."""
    known = uuid.uuid4()
    first, again = axis_mix(1, 0), axis_mix(0.9, np.sqrt(1 - 0.81))
    provisional, joined = assign_batch(
        np.stack([first, again]),
        [Candidate(known, 0.42, PersonKind.CUSTOMER), Candidate(known, 0.41, PersonKind.CUSTOMER)],
        {known: 1}, THRESHOLD, 5, 0.92, uuid.uuid4, ambiguous_band=BAND,
    )  # fmt: skip
    assert provisional is not None and joined is not None
    assert joined.person_id == provisional.person_id and not joined.is_new_person and joined.ambiguous_with is None


def test_the_closer_of_a_stored_and_a_batch_candidate_is_named() -> None:
    known = uuid.uuid4()
    first, second = axis_mix(1, 0), axis_mix(0.43, np.sqrt(1 - 0.43**2))
    a, b = assign_batch(
        np.stack([first, second]), [None, Candidate(known, 0.41, PersonKind.CUSTOMER)], {known: 1}, THRESHOLD, 5,
        0.92, uuid.uuid4, ambiguous_band=BAND,
    )  # fmt: skip
    assert a is not None and b is not None and b.ambiguous_with == a.person_id
