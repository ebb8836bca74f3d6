"""Which crop of each track is published, and when: the best one, when the track ends or every N seconds.

Only the chosen crop is embedded, so a person standing in front of a camera costs one embedding per
emission, not one per frame. Pure logic over anything with a `quality`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Scored(Protocol):
    @property
    def quality(self) -> float: ...


C = TypeVar("C", bound=Scored)


@dataclass
class _TrackBest(Generic[C]):
    best: C | None
    since: float
    """Start of the current emission period: the track's start or its last emission."""


class BestCropSelector(Generic[C]):
    def __init__(self, emit_interval_seconds: float) -> None:
        """`emit_interval_seconds` 0 means a track is published once, when it ends."""
        self._interval = emit_interval_seconds
        self._tracks: dict[int, _TrackBest[C]] = {}

    def offer(self, track_id: int, candidate: C, now: float) -> None:
        """Keep `candidate` if it is the best of its track in the current period."""
        state = self._tracks.setdefault(track_id, _TrackBest(None, now))
        if state.best is None or candidate.quality > state.best.quality:
            state.best = candidate

    def take_due(self, ended_track_ids: Iterable[int], now: float) -> list[tuple[int, C]]:
        """The crops to publish now: the best of each ended track, and of live tracks whose period is over."""
        due = [(track_id, state.best) for track_id in ended_track_ids if (state := self._tracks.pop(track_id, None))]
        if self._interval > 0:
            for track_id, state in self._tracks.items():
                if state.best is not None and now - state.since >= self._interval:
                    due.append((track_id, state.best))
                    state.best, state.since = None, now
        return [(track_id, best) for track_id, best in due if best is not None]

    def take_all(self) -> list[tuple[int, C]]:
        """Everything still held (the source ended)."""
        return self.take_due(list(self._tracks), now=float("-inf"))
