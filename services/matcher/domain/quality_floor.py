"""Which faces are good enough to identify. No I/O here.

A crop below the floor (small, blurred, profile, badly lit) embeds unreliably: matched, it would become a
spurious new person or pull a wrong vector into a real one. It is counted as an unidentified sighting instead.
The floor is the server's, not the edge's, so an old or misconfigured edge cannot pollute the person store.
"""

from collections.abc import Sequence


def identifiable_indexes(qualities: Sequence[float], min_qualities: Sequence[float]) -> list[int]:
    """Indexes, in order, of the faces whose quality reaches their floor (`min_qualities[i]`, their tenant's;
    at the floor counts as good enough)."""
    return [
        index for index, (quality, floor) in enumerate(zip(qualities, min_qualities, strict=True)) if quality >= floor
    ]
