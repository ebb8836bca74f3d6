"""The face tracker (motion in face widths, then appearance) and the per-track choice of the crop to publish."""

from dataclasses import dataclass

import numpy as np

from edge.best_crop import BestCropSelector
from edge.detector import Box
from edge.tracker import FaceTracker, Look, Observation, TrackerTuning


@dataclass(frozen=True)
class VectorLook:
    """A face's look as a fixed unit vector: two people are two orthogonal vectors."""

    vector: tuple[float, ...]

    def similarity(self, other: Look) -> float:
        assert isinstance(other, VectorLook)
        return float(np.dot(self.vector, other.vector))


ALICE, BOB = VectorLook((1.0, 0.0)), VectorLook((0.0, 1.0))


def seen(x: float, look: VectorLook = ALICE, size: float = 80, y: float = 300, quality: float = 0.9) -> Observation:
    return Observation(Box(x, y, size, size), look, quality)


def track_of(tracker: FaceTracker, now: float, *observations: Observation) -> list[int]:
    return tracker.update(list(observations), now).track_ids


def test_a_walker_moving_two_face_widths_per_frame_at_5_fps_is_one_track():
    """1,280 px in 2 s at 5 fps: 128 px between frames on an 80 px face, boxes that never overlap."""
    tracker = FaceTracker()
    ids = {track_of(tracker, step * 0.2, seen(-40 + 128 * step))[0] for step in range(11)}
    assert len(ids) == 1


def test_a_stranger_appearing_where_a_new_track_could_go_starts_a_track_of_their_own():
    tracker = FaceTracker()
    first = track_of(tracker, 0.0, seen(100))[0]
    assert track_of(tracker, 0.2, seen(220, BOB))[0] != first  # within the wide gate, but another face


def test_a_track_with_a_velocity_follows_motion_without_consulting_appearance():
    """Once it moves predictably, a lone track does not ask for the embedding (it costs 5 ms a face)."""

    class Unreadable(VectorLook):
        def similarity(self, other: Look) -> float:
            raise AssertionError("appearance was consulted")

    tracker = FaceTracker()
    track_of(tracker, 0.0, seen(0))
    track_of(tracker, 0.2, seen(100))
    ids = {track_of(tracker, step * 0.2, seen(100 * step, Unreadable((1.0, 0.0))))[0] for step in range(2, 8)}
    assert len(ids) == 1


def test_two_people_passing_each_other_keep_their_own_tracks():
    tracker = FaceTracker()
    alice_ids, bob_ids = set(), set()
    for step in range(12):
        alice = seen(100 + 100 * step, ALICE, y=300)
        bob = seen(1200 - 100 * step, BOB, y=310)
        alice_id, bob_id = track_of(tracker, step * 0.2, bob, alice)[::-1]
        alice_ids.add(alice_id)
        bob_ids.add(bob_id)
    assert len(alice_ids) == len(bob_ids) == 1 and alice_ids != bob_ids


def test_a_face_hidden_for_almost_a_second_keeps_its_track():
    tracker = FaceTracker(TrackerTuning(timeout_seconds=1.5))
    before = {track_of(tracker, step * 0.2, seen(100 * step))[0] for step in range(4)}
    for step in range(4, 8):  # behind a pillar for 0.8 s
        assert tracker.update([], step * 0.2).ended == []
    after = {track_of(tracker, step * 0.2, seen(100 * step))[0] for step in range(8, 11)}
    assert before == after and len(before) == 1


def test_a_face_much_larger_or_smaller_is_not_the_same_track():
    tracker = FaceTracker()
    first = track_of(tracker, 0.0, seen(100, size=60))[0]
    assert track_of(tracker, 0.2, seen(110, size=150))[0] != first


def test_the_track_keeps_its_best_face_to_compare_and_publish():
    tracker = FaceTracker()
    track_of(tracker, 0.0, seen(0, quality=0.4))
    track_of(tracker, 0.2, seen(100, quality=0.9))
    track_of(tracker, 0.4, seen(200, quality=0.6))
    assert [track.best.quality for track in tracker.active] == [0.9]


def test_a_track_ends_after_the_timeout_and_a_returning_face_is_a_new_track():
    tracker = FaceTracker(TrackerTuning(timeout_seconds=1.0))
    first = track_of(tracker, 0.0, seen(0))[0]
    assert tracker.update([], now=0.9).ended == []
    ended = tracker.update([], now=1.5).ended
    assert [track.track_id for track in ended] == [first]
    assert track_of(tracker, 2.0, seen(0))[0] != first


def test_finish_ends_every_open_track():
    tracker = FaceTracker()
    tracker.update([seen(0), seen(600, BOB)], now=0.0)
    assert len(tracker.finish()) == 2
    assert tracker.active == []


@dataclass(frozen=True)
class Crop:
    quality: float


def test_selector_publishes_the_best_crop_once_when_the_track_ends():
    selector: BestCropSelector[Crop] = BestCropSelector(emit_interval_seconds=0)
    for now, quality in enumerate([0.4, 0.9, 0.6]):
        selector.offer(1, Crop(quality), float(now))
    assert selector.take_due([], now=100.0) == []
    assert selector.take_due([1], now=101.0) == [(1, [Crop(0.9)])]
    assert selector.take_due([1], now=102.0) == []


def test_selector_also_publishes_long_tracks_every_interval():
    selector: BestCropSelector[Crop] = BestCropSelector(emit_interval_seconds=10)
    selector.offer(7, Crop(0.5), 0.0)
    selector.offer(7, Crop(0.7), 5.0)
    assert selector.take_due([], now=9.0) == []
    assert selector.take_due([], now=10.0) == [(7, [Crop(0.7)])]
    selector.offer(7, Crop(0.3), 12.0)  # a new period starts: a worse crop is still this period's best
    assert selector.take_all() == [(7, [Crop(0.3)])]


def test_selector_keeps_the_few_best_crops_of_a_period_best_first():
    selector: BestCropSelector[Crop] = BestCropSelector(emit_interval_seconds=0, keep=3)
    for now, quality in enumerate([0.4, 0.9, 0.6, 0.2, 0.8, 0.6]):
        selector.offer(1, Crop(quality), float(now))
    assert selector.take_due([1], now=9.0) == [(1, [Crop(0.9), Crop(0.8), Crop(0.6)])]


def test_selector_skips_ended_tracks_that_never_had_a_good_enough_crop():
    selector: BestCropSelector[Crop] = BestCropSelector(emit_interval_seconds=0)
    assert selector.take_due([3], now=1.0) == []
