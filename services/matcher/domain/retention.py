"""Whose vectors the retention job deletes: pure, so the rule is tested without Milvus."""

import uuid
from collections.abc import Iterable


def persons_unseen_since(sightings: Iterable[tuple[uuid.UUID, int]], cutoff_ms: int) -> set[uuid.UUID]:
    """The persons whose newest stored vector (`captured_at_ms`, over every embedding model) is older than
    `cutoff_ms`. A person seen since keeps all its vectors, old ones too: they are what recognises it."""
    newest: dict[uuid.UUID, int] = {}
    for person_id, captured_at_ms in sightings:
        newest[person_id] = max(newest.get(person_id, captured_at_ms), captured_at_ms)
    return {person_id for person_id, seen_ms in newest.items() if seen_ms < cutoff_ms}
