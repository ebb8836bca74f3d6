"""Frames with their capture time, from an image folder, a video file, a live RTSP/HTTP stream or a local
webcam (`webcam:0`, the camera's device index).

Timestamps: an image folder is a simulated camera (`clock_start + index * frame_interval`), a video file
is placed at `clock_start` (its frames at `clock_start + position in the video`), a live stream uses the
wall clock. A fixed `clock_start` lets end-to-end tests replay visits on different days. A live stream
never ends: it is reopened with backoff when it drops, and watched for frozen or black pictures.
"""

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.detector import Image
from edge.metrics import STREAM_BLACK, STREAM_FROZEN, STREAM_RECONNECTS, STREAM_UP
from edge.stream_health import StreamCondition, StreamMonitor, frame_stats, thumbnail
from plumbing.logging import get_logger

log = get_logger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
WEBCAM_PREFIX = "webcam:"


class SourceKind(StrEnum):
    IMAGES = "images"
    VIDEO = "video"
    STREAM = "stream"


class SourceError(RuntimeError):
    """The source cannot be opened or read."""


@dataclass(frozen=True)
class Frame:
    index: int
    captured_at: datetime
    image: Image
    name: str
    """The image file, or `frame <n>` of a video/stream: for logs."""


def source_kind(source: str) -> SourceKind:
    """A webcam is a live stream like any other: same reconnect, frozen and black detection."""
    if source.lower().startswith(STREAM_SCHEMES) or webcam_index(source) is not None:
        return SourceKind.STREAM
    path = Path(source)
    if path.is_dir():
        return SourceKind.IMAGES
    if path.is_file():
        return SourceKind.VIDEO
    raise SourceError(f"source {source} is neither an image folder, a video file, an rtsp/http URL nor webcam:N")


def image_files(folder: Path) -> list[Path]:
    """The images of a folder and its subfolders, in sorted path order."""
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


def image_folder_frames(folder: Path, clock_start: datetime, interval_seconds: float) -> Iterator[Frame]:
    """Each image is one frame; unreadable files are reported, not skipped silently."""
    for index, path in enumerate(image_files(folder)):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot decode image {path}")
        yield Frame(
            index,
            clock_start + timedelta(seconds=index * interval_seconds),
            np.asarray(image, dtype=np.uint8),
            str(path),
        )


class Capture(Protocol):
    """What the sources use of `cv2.VideoCapture`."""

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, Any]: ...

    def release(self) -> None: ...

    def get(self, prop_id: int) -> float: ...


Opener = Callable[[str], Capture]


def webcam_index(source: str) -> int | None:
    """`webcam:N` names local camera N; anything else is not a webcam."""
    if source.startswith(WEBCAM_PREFIX) and source[len(WEBCAM_PREFIX) :].isdigit():
        return int(source[len(WEBCAM_PREFIX) :])
    return None


def open_capture(source: str) -> Capture:
    """Streams and files through OpenCV's FFmpeg backend; a webcam through the platform's camera API
    (V4L2 on Linux, AVFoundation on macOS), which FFmpeg cannot open by device index."""
    index = webcam_index(source)
    capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG) if index is None else cv2.VideoCapture(index)
    if not capture.isOpened():
        backend = "FFmpeg backend" if index is None else "camera API (is the device present and permitted?)"
        raise SourceError(f"cannot open {source} with OpenCV's {backend}")
    return capture


def video_file_frames(path: Path, clock_start: datetime, fps: float) -> Iterator[Frame]:
    """Frames sampled at about `fps` (never more than the file's own rate), stamped by video position."""
    capture = open_capture(str(path))
    native_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    next_sample, position, index = 0.0, 0, 0
    try:
        while capture.grab():
            seconds = position / native_fps if native_fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
            position += 1
            if seconds + 1e-6 < next_sample:
                continue
            ok, image = capture.retrieve()
            if not ok:
                raise SourceError(f"cannot decode frame {position - 1} of {path}")
            next_sample += 1.0 / fps
            yield Frame(
                index,
                clock_start + timedelta(seconds=seconds),
                np.asarray(image, dtype=np.uint8),
                f"frame {position - 1}",
            )
            index += 1
    finally:
        capture.release()


@dataclass(frozen=True)
class StreamOptions:
    """How a live stream is watched and reconnected (from the edge settings)."""

    camera_id: str
    fps: float
    reconnect_initial_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0
    frozen_seconds: float = 10.0
    black_seconds: float = 10.0
    black_luma: float = 16.0
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the edge stops: a reconnect wait ends at once instead of running its course."""


def backoff_delays(initial: float, maximum: float) -> Iterator[float]:
    """0.5, 1, 2, 4 ... seconds, capped: a camera rebooting is back in a minute, a dead one is not hammered."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * 2, maximum)


def stream_frames(
    url: str, options: StreamOptions, opener: Opener = open_capture, wait: Callable[[float], bool] | None = None
) -> Iterator[Frame]:
    """Live frames at about `fps`, stamped with the wall clock, for ever.

    Every frame is grabbed (so none go stale) and only the sampled ones decoded. When the stream cannot be
    opened or stops, it is reopened after an exponential backoff that resets once frames flow again.
    Frozen and black pictures are logged and exposed as gauges; their frames are still processed.
    `wait(seconds)` returns True when the edge is stopping (default: `options.stopping.wait`), which ends the stream.
    """
    wait = wait or options.stopping.wait
    camera = options.camera_id
    monitor = StreamMonitor(options.frozen_seconds, options.black_seconds, options.black_luma)
    condition = StreamCondition(frozen=False, black=False)
    delays = backoff_delays(options.reconnect_initial_seconds, options.reconnect_max_seconds)
    index, attempt = 0, 0
    while True:
        try:
            capture = opener(url)
        except SourceError as error:
            delay = next(delays)
            log.warning("stream_unavailable_retrying", camera=camera, error=str(error), retry_in_seconds=delay)
            STREAM_UP.labels(camera).set(0)
            if wait(delay):
                return
            continue
        if attempt:
            STREAM_RECONNECTS.labels(camera).inc()
        attempt += 1
        STREAM_UP.labels(camera).set(1)
        monitor.reset()
        previous: NDArray[np.uint8] | None = None
        next_sample = 0.0
        try:
            while capture.grab():
                now = datetime.now(UTC)
                if now.timestamp() < next_sample:
                    continue
                ok, image = capture.retrieve()
                if not ok:
                    break
                next_sample = now.timestamp() + 1.0 / options.fps
                frame_image = np.asarray(image, dtype=np.uint8)
                small = thumbnail(frame_image)
                condition = _report(camera, condition, monitor.observe(frame_stats(small, previous), now.timestamp()))
                previous = small
                delays = backoff_delays(options.reconnect_initial_seconds, options.reconnect_max_seconds)
                yield Frame(index, now, frame_image, f"frame {index}")
                index += 1
        finally:
            capture.release()
        delay = next(delays)
        log.warning("stream_dropped_reconnecting", camera=camera, url=url, retry_in_seconds=delay)
        STREAM_UP.labels(camera).set(0)
        if wait(delay):
            return


def _report(camera: str, before: StreamCondition, now: StreamCondition) -> StreamCondition:
    """Set the gauges; log each change of condition once, not every frame."""
    STREAM_FROZEN.labels(camera).set(int(now.frozen))
    STREAM_BLACK.labels(camera).set(int(now.black))
    if now.frozen != before.frozen:
        (log.warning if now.frozen else log.info)("stream_frozen" if now.frozen else "stream_unfrozen", camera=camera)
    if now.black != before.black:
        (log.warning if now.black else log.info)("stream_black" if now.black else "stream_lit", camera=camera)
    return now


def open_source(
    source: str, clock_start: datetime, frame_interval_seconds: float, options: StreamOptions
) -> Iterator[Frame]:
    kind = source_kind(source)
    if kind is SourceKind.IMAGES:
        return image_folder_frames(Path(source), clock_start, frame_interval_seconds)
    if kind is SourceKind.VIDEO:
        return video_file_frames(Path(source), clock_start, options.fps)
    return stream_frames(source, options)
