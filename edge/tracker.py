"""Face tracking that holds a person walking past a camera sampled at a few frames per second.

Why not box overlap (SORT's IoU): at 5 fps a person crossing a shop entrance moves 50-170 px between
two sampled frames while the face is 50-200 px tall, so consecutive boxes of one face barely overlap
or not at all, and every frame started a new track. What this tracker takes from the trackers that
solve it (read for this design: SORT, DeepSORT, ByteTrack, OC-SORT):

- Motion in face widths (DeepSORT's gate, scaled by size instead of a Kalman covariance): a detection
  may continue a track only within a radius of the predicted position measured in face widths, so the
  gate means the same for a 50 px face far away and a 200 px one close by. A track seen once has no
  velocity yet; its gate is as wide as the fastest walker moves in the elapsed time.
- Velocity from observations (OC-SORT): a track re-found after a gap takes its velocity from the two
  observations around the gap, not from its own predictions, so a missed frame does not bend it.
- Appearance (DeepSORT's second cue), from the face embedding the edge computes anyway, but only where
  motion cannot decide: a track seen once (no velocity, so a wide gate), a track lost for a frame or
  more, or a detection that two tracks could take (people passing each other). There a pair whose
  faces differ is never associated and the cost mixes motion and appearance. Elsewhere motion alone
  decides, so a walker costs about two extra embeddings per track, not one per frame. (A cheap grey
  patch descriptor was measured first: its same-face and other-face similarities overlap too much,
  docs/edge.md.) A track compares with its best-quality face, the one it will publish, whose
  embedding is then reused for the event.
- Optimal assignment (Hungarian, SciPy) instead of greedy matching: with people crossing, the greedy
  best pair can steal the detection the other track needs.
- Lost tracks are kept and predicted for `timeout_seconds`, so a face missed for a few frames (turned
  away, occluded by another shopper) continues its track.

Time is in seconds (the frame's capture time), so a lower or irregular fps changes nothing. Pure logic.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.detector import Box

VELOCITY_SMOOTHING = 0.6
"""Weight of the newest velocity measurement; the rest is the previous estimate."""
NO_MATCH = 1e6
"""Cost of a pair outside the gates: never assigned."""


@dataclass(frozen=True)
class TrackerTuning:
    """The gates and weights of association; defaults measured on the motion benchmark (docs/BENCHMARKS.md)."""

    timeout_seconds: float = 1.5
    """A track unseen for longer than this has ended (the person left or turned away for good)."""
    max_speed_face_widths: float = 18.0
    """Fastest plausible motion of a face, in face widths per second: crossing 1,280 px in 1.5 s with a
    50 px face is 17. It is the gate of a track seen once, which has no velocity yet."""
    motion_gate_face_widths: float = 0.8
    """How far from its predicted position (in face widths) a track with a velocity may be continued."""
    gate_growth_face_widths: float = 3.0
    """How much that radius grows per second unseen: the longer a track is lost, the less sure its prediction."""
    max_scale_change: float = 1.6
    """Largest ratio of face sizes between two observations of one track (and its inverse)."""
    min_appearance: float = 0.3
    """Face similarity under which a detection never continues a track, where appearance is consulted.
    Different people measure at most 0.27 with the test embedder, one face across frames far above."""
    reliable_quality: float = 0.25
    """Under this quality a face's embedding is not trusted to veto a pair (a face cut by the frame's edge)."""
    appearance_weight: float = 1.0
    """Weight of the appearance cost against the motion cost (each 0..1 inside the gates)."""


class Look(Protocol):
    """What a face looks like, computed only when asked (an embedding costs more than a detection)."""

    def similarity(self, other: "Look") -> float: ...


@dataclass(frozen=True)
class Observation:
    """What the tracker needs of a detection: where the face is, what it looks like, how good it is."""

    box: Box
    look: Look
    quality: float
    clear: bool = True
    """No other face overlaps it and the frame's edge does not cut it: its look can veto a pair. Two people
    passing each other overlap for a frame, and the hidden one's embedding matches nobody."""


def center(box: Box) -> tuple[float, float]:
    return box.x + box.width / 2, box.y + box.height / 2


def face_size(box: Box) -> float:
    """The face's scale in pixels: the geometric mean of width and height."""
    return math.sqrt(box.width * box.height)


@dataclass
class Track:
    track_id: int
    box: Box
    best: Observation
    """The track's best-quality face: what it is compared with, and what it will publish."""
    last_seen: float
    missed: int = 0
    """Updates since the track was last seen: more than 0 means lost for now."""
    velocity: tuple[float, float] | None = None
    """px/s of the box centre; None until the track has been observed twice."""

    def predicted_center(self, now: float) -> tuple[float, float]:
        x, y = center(self.box)
        if self.velocity is None:
            return x, y
        dt = now - self.last_seen
        return x + self.velocity[0] * dt, y + self.velocity[1] * dt

    def gate_face_widths(self, now: float, tuning: TrackerTuning) -> float:
        """Radius around the predicted centre, in face widths, within which a detection may continue this track."""
        dt = max(now - self.last_seen, 0.0)
        if self.velocity is None:
            return tuning.motion_gate_face_widths + tuning.max_speed_face_widths * dt
        return tuning.motion_gate_face_widths + tuning.gate_growth_face_widths * dt

    def observe(self, observation: Observation, now: float) -> None:
        dt = now - self.last_seen
        if dt > 0:
            (x0, y0), (x1, y1) = center(self.box), center(observation.box)
            measured = ((x1 - x0) / dt, (y1 - y0) / dt)
            if self.velocity is None:
                self.velocity = measured
            else:
                self.velocity = (
                    VELOCITY_SMOOTHING * measured[0] + (1 - VELOCITY_SMOOTHING) * self.velocity[0],
                    VELOCITY_SMOOTHING * measured[1] + (1 - VELOCITY_SMOOTHING) * self.velocity[1],
                )
        if observation.quality > self.best.quality:
            self.best = observation
        self.box, self.last_seen, self.missed = observation.box, now, 0

    def motion_is_sure(self) -> bool:
        """Motion alone decides for a track with a velocity that was seen in the previous update."""
        return self.velocity is not None and self.missed == 0


def motion_cost(track: Track, observation: Observation, now: float, tuning: TrackerTuning) -> float:
    """Distance from the prediction over the gate (0..1), `NO_MATCH` outside the scale or motion gates."""
    track_size, size = face_size(track.box), face_size(observation.box)
    if not 1 / tuning.max_scale_change <= size / track_size <= tuning.max_scale_change:
        return NO_MATCH
    (px, py), (x, y) = track.predicted_center(now), center(observation.box)
    distance = math.hypot(x - px, y - py) / ((track_size + size) / 2)
    gate = track.gate_face_widths(now, tuning)
    return distance / gate if distance <= gate else NO_MATCH


def appearance_cost(track: Track, observation: Observation, tuning: TrackerTuning) -> float:
    """0..1 (lower is more alike), `NO_MATCH` for faces that differ; 0.5 when either face is too poor to judge."""
    judgeable = track.best.clear and observation.clear
    if not judgeable or min(track.best.quality, observation.quality) < tuning.reliable_quality:
        return 0.5
    similarity = observation.look.similarity(track.best.look)
    if similarity < tuning.min_appearance:
        return NO_MATCH
    return (1 - similarity) / (1 - tuning.min_appearance)


@dataclass(frozen=True)
class TrackUpdate:
    """The track of each observation (same order as given), the tracks it started and those that ended."""

    track_ids: list[int]
    started: list[int]
    ended: list[Track]


@dataclass
class FaceTracker:
    tuning: TrackerTuning = field(default_factory=TrackerTuning)
    _tracks: dict[int, Track] = field(default_factory=dict)
    _next_id: int = 1

    @property
    def active(self) -> list[Track]:
        return list(self._tracks.values())

    def update(self, observations: Sequence[Observation], now: float) -> TrackUpdate:
        """Associate the faces seen at `now` with tracks, start tracks for the rest, end stale tracks."""
        existing = set(self._tracks)
        assigned = self._match(observations, now)
        track_ids = [self._assign(obs, assigned.get(index), now) for index, obs in enumerate(observations)]
        for track in self._tracks.values():
            if track.last_seen < now:
                track.missed += 1
        started = [track_id for track_id in track_ids if track_id not in existing]
        return TrackUpdate(track_ids, started, self._expire(now))

    def finish(self) -> list[Track]:
        """End every track (the source ended)."""
        ended, self._tracks = list(self._tracks.values()), {}
        return ended

    def _match(self, observations: Sequence[Observation], now: float) -> dict[int, int]:
        """Minimum-cost association of observations with tracks: observation index -> track id.

        Motion gates first; appearance is added only to the pairs motion cannot decide alone."""
        tracks = list(self._tracks.values())
        if not tracks or not observations:
            return {}
        costs = np.array([[motion_cost(track, obs, now, self.tuning) for track in tracks] for obs in observations])
        gated = costs < NO_MATCH
        contested = (gated.sum(axis=1, keepdims=True) > 1) | (gated.sum(axis=0, keepdims=True) > 1)
        for row, column in zip(*np.nonzero(gated), strict=True):
            track = tracks[column]
            if contested[row, column] or not track.motion_is_sure():
                costs[row, column] += self.tuning.appearance_weight * appearance_cost(
                    track, observations[row], self.tuning
                )
        rows, columns = linear_sum_assignment(costs)
        return {
            int(row): tracks[column].track_id
            for row, column in zip(rows, columns, strict=True)
            if costs[row, column] < NO_MATCH
        }

    def _assign(self, observation: Observation, track_id: int | None, now: float) -> int:
        if track_id is not None:
            self._tracks[track_id].observe(observation, now)
            return track_id
        track = Track(self._next_id, observation.box, observation, last_seen=now)
        self._tracks[track.track_id] = track
        self._next_id += 1
        return track.track_id

    def _expire(self, now: float) -> list[Track]:
        ended = [track for track in self._tracks.values() if now - track.last_seen > self.tuning.timeout_seconds]
        for track in ended:
            del self._tracks[track.track_id]
        return ended
