"""A SORT-like IoU tracker, so that one person in front of a camera is one track, not one face per frame.

Like SORT it predicts each track's box with a constant-velocity model and associates detections to
predictions by IoU; unlike SORT it needs no Kalman filter or Hungarian solver: at the few fps and few
faces of a shop camera, a smoothed velocity and greedy matching by descending IoU give the same tracks.
Time is in seconds (the frame's capture time), so a lower or irregular fps changes nothing. Pure logic.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.detector import Box

VELOCITY_SMOOTHING = 0.5
"""Weight of the newest velocity measurement; the rest is the previous estimate."""


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 when they do not overlap."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.width * a.height + b.width * b.height - inter)


@dataclass
class Track:
    track_id: int
    box: Box
    first_seen: float
    last_seen: float
    hits: int = 1
    velocity: tuple[float, float] = (0.0, 0.0)

    def predicted(self, now: float) -> Box:
        """Where the box should be at `now`, moving at the estimated velocity (px/s)."""
        dt = now - self.last_seen
        return Box(
            self.box.x + self.velocity[0] * dt, self.box.y + self.velocity[1] * dt, self.box.width, self.box.height
        )

    def observe(self, box: Box, now: float) -> None:
        dt = now - self.last_seen
        if dt > 0:
            measured = ((box.x - self.box.x) / dt, (box.y - self.box.y) / dt)
            self.velocity = (
                VELOCITY_SMOOTHING * measured[0] + (1 - VELOCITY_SMOOTHING) * self.velocity[0],
                VELOCITY_SMOOTHING * measured[1] + (1 - VELOCITY_SMOOTHING) * self.velocity[1],
            )
        self.box, self.last_seen, self.hits = box, now, self.hits + 1


@dataclass(frozen=True)
class TrackUpdate:
    """The track of each detection (same order as given), the tracks it started and those that ended."""

    track_ids: list[int]
    started: list[int]
    ended: list[Track]


@dataclass
class IouTracker:
    iou_threshold: float = 0.3
    timeout_seconds: float = 1.0
    """A track not matched for longer than this has ended (the person left or turned away)."""
    _tracks: dict[int, Track] = field(default_factory=dict)
    _next_id: int = 1

    @property
    def active(self) -> list[Track]:
        return list(self._tracks.values())

    def update(self, boxes: Sequence[Box], now: float) -> TrackUpdate:
        """Associate `boxes` seen at `now` with tracks, start tracks for the rest, end stale tracks."""
        existing = set(self._tracks)
        assigned = self._match(boxes, now)
        track_ids = [self._assign(box, assigned.get(index), now) for index, box in enumerate(boxes)]
        started = [track_id for track_id in track_ids if track_id not in existing]
        return TrackUpdate(track_ids, started, self._expire(now))

    def finish(self) -> list[Track]:
        """End every track (the source ended)."""
        ended, self._tracks = list(self._tracks.values()), {}
        return ended

    def _match(self, boxes: Sequence[Box], now: float) -> dict[int, int]:
        """Greedy association by descending IoU with the predicted boxes: detection index -> track id."""
        pairs = [
            (iou(track.predicted(now), box), index, track.track_id)
            for index, box in enumerate(boxes)
            for track in self._tracks.values()
        ]
        matched: dict[int, int] = {}
        used_tracks: set[int] = set()
        for overlap, index, track_id in sorted(pairs, key=lambda pair: -pair[0]):
            if overlap < self.iou_threshold:
                break
            if index not in matched and track_id not in used_tracks:
                matched[index] = track_id
                used_tracks.add(track_id)
        return matched

    def _assign(self, box: Box, track_id: int | None, now: float) -> int:
        if track_id is not None:
            self._tracks[track_id].observe(box, now)
            return track_id
        track = Track(self._next_id, box, first_seen=now, last_seen=now)
        self._tracks[track.track_id] = track
        self._next_id += 1
        return track.track_id

    def _expire(self, now: float) -> list[Track]:
        ended = [track for track in self._tracks.values() if now - track.last_seen > self.timeout_seconds]
        for track in ended:
            del self._tracks[track.track_id]
        return ended
