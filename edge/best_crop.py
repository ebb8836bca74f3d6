"""Which crops of each track are published, and when: its best few, when the track ends or every N seconds.

A track's event carries the crop of its best face and an embedding pooled from its `keep` best faces (see
`pool_embeddings`): one degraded frame then cannot make a walking person a stranger. Only the kept faces are
embedded, so a person standing in front of a camera costs at most `keep` embeddings per emission, not one
per frame. Pure logic over anything with a `quality`.
"""

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class Scored(Protocol):
    @property
    def quality(self) -> float: ...


C = TypeVar("C", bound=Scored)


@dataclass
class _TrackBest(Generic[C]):
    since: float
    """Start of the current emission period: the track's start or its last emission."""
    best: list[C] = field(default_factory=list)
    """The period's best candidates, best first."""


class BestCropSelector(Generic[C]):
    def __init__(self, emit_interval_seconds: float, keep: int = 1) -> None:
        """`emit_interval_seconds` 0 means a track is published once, when it ends; `keep` candidates are held."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._interval, self._keep = emit_interval_seconds, keep
        self._tracks: dict[int, _TrackBest[C]] = {}

    def offer(self, track_id: int, candidate: C, now: float) -> None:
        """Keep `candidate` if it is among the `keep` best of its track in the current period (ties: earliest)."""
        best = self._tracks.setdefault(track_id, _TrackBest(now)).best
        position = bisect.bisect_right([-c.quality for c in best], -candidate.quality)
        if position < self._keep:
            best.insert(position, candidate)
            del best[self._keep :]

    def take_due(self, ended_track_ids: Iterable[int], now: float) -> list[tuple[int, list[C]]]:
        """The candidates to publish now, best first: those of each ended track, and of live tracks whose
        period is over."""
        due = [(track_id, state.best) for track_id in ended_track_ids if (state := self._tracks.pop(track_id, None))]
        if self._interval > 0:
            for track_id, state in self._tracks.items():
                if state.best and now - state.since >= self._interval:
                    due.append((track_id, state.best))
                    state.best, state.since = [], now
        return [(track_id, best) for track_id, best in due if best]

    def take_all(self) -> list[tuple[int, list[C]]]:
        """Everything still held (the source ended)."""
        return self.take_due(list(self._tracks), now=float("-inf"))
