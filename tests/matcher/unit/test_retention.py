"""Whose vectors retention deletes: persons whose newest vector, in any model, is older than the cutoff."""

import uuid

from services.matcher.domain.retention import persons_unseen_since


def test_a_person_is_unseen_only_if_its_newest_vector_is_old() -> None:
    old, recent, mixed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rows = [(old, 10), (old, 90), (recent, 150), (mixed, 5), (mixed, 100)]
    assert persons_unseen_since(rows, cutoff_ms=100) == {old}
    assert persons_unseen_since([], cutoff_ms=100) == set()
