from services.matcher.domain.quality_floor import identifiable_indexes


def test_faces_below_the_floor_are_not_identified_and_order_is_kept() -> None:
    assert identifiable_indexes([0.9, 0.1, 0.3, 0.29, 0.5], [0.3] * 5) == [0, 2, 4]


def test_a_face_exactly_at_the_floor_is_identified() -> None:
    assert identifiable_indexes([0.3], [0.3]) == [0]


def test_floor_zero_identifies_every_face_and_an_empty_batch_nothing() -> None:
    assert identifiable_indexes([0.0, 1.0], [0.0, 0.0]) == [0, 1]
    assert identifiable_indexes([], []) == []


def test_floor_one_identifies_only_perfect_crops() -> None:
    assert identifiable_indexes([0.99, 1.0], [1.0, 1.0]) == [1]


def test_each_face_is_held_to_its_own_floor() -> None:
    """Faces of two tenants in one batch: each tenant's floor applies to its own faces only."""
    assert identifiable_indexes([0.7, 0.7], [0.65, 0.75]) == [0]
