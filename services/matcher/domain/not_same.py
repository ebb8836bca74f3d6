""" "Not the same": persons an operator said are different people. No I/O here.

When a face is about as close to a person P as to a person Q marked different from P, the matcher cannot
tell which of the two it shows; joining it to P would be a guess that the operator already refused once.
Such a face is treated as matching nobody: it starts a new person if it may enrol, else it is an
unidentified sighting.
"""

import uuid
from collections.abc import Collection, Sequence

from services.matcher.domain.assignment import Candidate

NOT_SAME_MARGIN = 0.05
"""Two similarities closer than this cannot tell two persons apart (same-person pairs spread wider)."""

PersonPair = tuple[uuid.UUID, uuid.UUID]


def person_pair(a: uuid.UUID, b: uuid.UUID) -> PersonPair:
    """The pair in a fixed order (by text form, as the KV key writes it), so (a, b) and (b, a) are one pair."""
    return (a, b) if str(a) <= str(b) else (b, a)


def decisive_candidate(
    candidates: Sequence[Candidate], not_same: Collection[PersonPair], margin: float = NOT_SAME_MARGIN
) -> Candidate | None:
    """The best candidate (candidates are one per person, most similar first), or None when a person marked
    different from it is within `margin` of it: then the face matches neither."""
    if not candidates:
        return None
    best = candidates[0]
    for rival in candidates[1:]:
        if rival.similarity < best.similarity - margin:
            break
        if person_pair(best.person_id, rival.person_id) in not_same:
            return None
    return best
