import numpy as np

from schemas.staff import staff_entry
from services.matcher.domain.assignment import normalize
from services.matcher.domain.staff import best_staff_match, staff_person_id, staff_vectors


def unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    return normalize(rng.normal(size=(n, 128)).astype(np.float32))


def test_staff_person_id_is_deterministic_and_per_tenant() -> None:
    assert staff_person_id("t1", "anna") == staff_person_id("t1", "anna")
    assert staff_person_id("t1", "anna") != staff_person_id("t2", "anna")
    assert staff_person_id("t1", "anna") != staff_person_id("t1", "ben")


def test_a_face_close_to_a_staff_vector_is_that_staff_member() -> None:
    rng = np.random.default_rng(1)
    anna, ben = unit(rng, 2), unit(rng, 1)
    gallery = staff_vectors(
        [staff_entry("t1", "anna", "m@1", anna.tolist()), staff_entry("t1", "ben", "m@1", ben.tolist())]
    )
    face = normalize(anna[1:2] + 0.02 * rng.normal(size=(1, 128)).astype(np.float32))[0]
    match = best_staff_match(face, gallery, 0.45)
    assert match is not None and match.staff_id == "anna" and match.similarity > 0.9


def test_a_stranger_and_an_empty_gallery_are_not_staff() -> None:
    rng = np.random.default_rng(2)
    gallery = staff_vectors([staff_entry("t1", "anna", "m@1", unit(rng).tolist())])
    assert best_staff_match(unit(rng)[0], gallery, 0.45) is None
    assert best_staff_match(unit(rng)[0], staff_vectors([]), 0.45) is None


def test_a_gallery_of_another_dimension_never_matches() -> None:
    rng = np.random.default_rng(3)
    gallery = staff_vectors([staff_entry("t1", "anna", "m@1", unit(rng).tolist())])
    assert best_staff_match(normalize(rng.normal(size=(1, 64)).astype(np.float32))[0], gallery, 0.0) is None
