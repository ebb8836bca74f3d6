"""Live streams: frozen and black pictures from frame statistics, and reconnection with backoff."""

import itertools
from typing import Any

import numpy as np
from prometheus_client import REGISTRY

from edge.sources import SourceError, StreamOptions, backoff_delays, stream_frames
from edge.stream_health import FrameStats, StreamMonitor, frame_stats, thumbnail


def monitor() -> StreamMonitor:
    return StreamMonitor(frozen_seconds=10, black_seconds=5, black_luma=16)


def test_identical_frames_for_the_configured_time_are_frozen_and_a_change_clears_it():
    watch = monitor()
    still = FrameStats(luma=120, change=0.0)
    assert not watch.observe(FrameStats(luma=120, change=None), 0).frozen
    assert not watch.observe(still, 1).frozen
    assert not watch.observe(still, 10.9).frozen
    assert watch.observe(still, 11).frozen
    assert not watch.observe(FrameStats(luma=120, change=4.0), 12).frozen
    assert not watch.observe(still, 13).frozen  # the clock restarts after a change


def test_dark_frames_for_the_configured_time_are_black_and_light_clears_it():
    watch = monitor()
    assert not watch.observe(FrameStats(luma=3, change=None), 0).black
    assert not watch.observe(FrameStats(luma=3, change=2.0), 4.9).black
    condition = watch.observe(FrameStats(luma=3, change=2.0), 5)
    assert condition.black and not condition.frozen
    assert not watch.observe(FrameStats(luma=90, change=30.0), 6).black


def test_reset_forgets_the_previous_connection():
    watch = monitor()
    watch.observe(FrameStats(luma=3, change=0.0), 0)
    watch.reset()
    assert not watch.observe(FrameStats(luma=3, change=0.0), 20).black


def test_frame_stats_of_real_pixels():
    scene = np.repeat(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], 360, axis=0).repeat(3, axis=2)
    small = thumbnail(scene)
    assert small.shape == (36, 64)
    assert frame_stats(small, None).change is None
    assert frame_stats(small, small).change == 0.0
    assert frame_stats(thumbnail(np.zeros_like(scene)), small).luma == 0.0
    assert (frame_stats(thumbnail(255 - scene), small).change or 0) > 100


class FakeCapture:
    """Delivers `frames` frames of noise, then reports the stream as broken."""

    def __init__(self, frames: int) -> None:
        self._left = frames
        self._rng = np.random.default_rng(self._left)
        self.released = False

    def grab(self) -> bool:
        self._left -= 1
        return self._left >= 0

    def retrieve(self) -> tuple[bool, Any]:
        return True, self._rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)

    def release(self) -> None:
        self.released = True

    def get(self, prop_id: int) -> float:
        return 0.0


def test_a_stream_that_fails_to_open_and_then_drops_is_reopened_with_backoff():
    attempts: list[FakeCapture | None] = [None, None, FakeCapture(2), None, FakeCapture(3)]
    opened: list[FakeCapture] = []
    delays: list[float] = []

    def opener(url: str) -> FakeCapture:
        capture = attempts.pop(0)
        if capture is None:
            raise SourceError(f"cannot open {url}")
        opened.append(capture)
        return capture

    options = StreamOptions(camera_id="cam-reconnect", fps=1e9, reconnect_initial_seconds=0.5)

    def record_wait(delay: float) -> bool:
        delays.append(delay)
        return False  # not stopping

    frames = list(itertools.islice(stream_frames("rtsp://cam", options, opener, record_wait), 5))
    assert [frame.index for frame in frames] == [0, 1, 2, 3, 4]
    # two failed opens (0.5, 1), a drop after frames flowed (backoff reset: 0.5), one failed open (1)
    assert delays == [0.5, 1.0, 0.5, 1.0]
    assert opened[0].released
    assert REGISTRY.get_sample_value("revisit_edge_stream_up", {"camera": "cam-reconnect"}) == 1
    assert REGISTRY.get_sample_value("revisit_edge_stream_reconnects_total", {"camera": "cam-reconnect"}) == 1


def test_backoff_doubles_up_to_the_cap():
    assert list(itertools.islice(backoff_delays(0.5, 4), 6)) == [0.5, 1, 2, 4, 4, 4]


def test_webcam_sources_are_live_streams_and_a_missing_device_is_a_clear_error() -> None:
    import pytest

    from edge.sources import SourceError, SourceKind, open_capture, source_kind, webcam_index

    assert webcam_index("webcam:0") == 0 and webcam_index("webcam:12") == 12
    assert webcam_index("webcam:x") is None and webcam_index("rtsp://cam/1") is None
    assert source_kind("webcam:0") is SourceKind.STREAM
    with pytest.raises(SourceError, match="camera API"):
        open_capture("webcam:97")  # no such device on any test machine


def test_stopping_ends_a_reconnect_wait_at_once() -> None:
    import threading
    import time as clock

    from edge.sources import SourceError, StreamOptions, stream_frames

    def unreachable(url: str):
        raise SourceError(f"cannot open {url}")

    options = StreamOptions(camera_id="cam", fps=5.0, reconnect_initial_seconds=30.0)
    threading.Timer(0.2, options.stopping.set).start()
    started = clock.monotonic()
    assert list(stream_frames("rtsp://gone", options, unreachable)) == []
    assert clock.monotonic() - started < 5
