"""The IoU tracker and the per-track choice of the crop to publish."""

from dataclasses import dataclass

from edge.best_crop import BestCropSelector
from edge.detector import Box
from edge.tracker import IouTracker, iou


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    box = Box(0, 0, 10, 10)
    assert iou(box, box) == 1.0
    assert iou(box, Box(20, 20, 10, 10)) == 0.0
    assert iou(box, Box(5, 0, 10, 10)) == 50 / 150


def test_a_face_moving_slowly_is_one_track():
    tracker = IouTracker(iou_threshold=0.3, timeout_seconds=1.0)
    ids = {tracker.update([Box(100 + 3 * step, 50, 80, 80)], now=step * 0.2).track_ids[0] for step in range(20)}
    assert len(ids) == 1


def test_two_faces_side_by_side_are_two_tracks_and_keep_their_ids():
    tracker = IouTracker()
    first = tracker.update([Box(0, 0, 50, 50), Box(200, 0, 50, 50)], now=0.0)
    assert first.started == first.track_ids and len(set(first.track_ids)) == 2
    swapped = tracker.update([Box(202, 0, 50, 50), Box(2, 0, 50, 50)], now=0.2)
    assert swapped.track_ids == list(reversed(first.track_ids))
    assert swapped.started == []


def test_velocity_prediction_keeps_a_face_that_speeds_up_beyond_plain_iou():
    tracker = IouTracker(iou_threshold=0.3)
    positions = [0, 10, 20, 50, 80, 110, 140]  # walks in, then 30 px per frame
    ids = [tracker.update([Box(x, 0, 50, 50)], now=step * 0.2).track_ids[0] for step, x in enumerate(positions)]
    assert iou(Box(20, 0, 50, 50), Box(50, 0, 50, 50)) < 0.3  # without prediction the track would break here
    assert len(set(ids)) == 1


def test_a_track_ends_after_the_timeout_and_a_returning_face_is_a_new_track():
    tracker = IouTracker(timeout_seconds=1.0)
    first = tracker.update([Box(0, 0, 50, 50)], now=0.0).track_ids[0]
    assert tracker.update([], now=0.9).ended == []
    ended = tracker.update([], now=1.5).ended
    assert [track.track_id for track in ended] == [first]
    assert tracker.update([Box(0, 0, 50, 50)], now=2.0).track_ids[0] != first


def test_finish_ends_every_open_track():
    tracker = IouTracker()
    tracker.update([Box(0, 0, 50, 50), Box(200, 0, 50, 50)], now=0.0)
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
    assert selector.take_due([1], now=101.0) == [(1, Crop(0.9))]
    assert selector.take_due([1], now=102.0) == []


def test_selector_also_publishes_long_tracks_every_interval():
    selector: BestCropSelector[Crop] = BestCropSelector(emit_interval_seconds=10)
    selector.offer(7, Crop(0.5), 0.0)
    selector.offer(7, Crop(0.7), 5.0)
    assert selector.take_due([], now=9.0) == []
    assert selector.take_due([], now=10.0) == [(7, Crop(0.7))]
    selector.offer(7, Crop(0.3), 12.0)  # a new period starts: a worse crop is still this period's best
    assert selector.take_all() == [(7, Crop(0.3))]


def test_selector_skips_ended_tracks_that_never_had_a_good_enough_crop():
    selector: BestCropSelector[Crop] = BestCropSelector(emit_interval_seconds=0)
    assert selector.take_due([3], now=1.0) == []
