"""Frames with their capture time, from an image folder, a video file or a live RTSP/HTTP stream.

Timestamps: an image folder is a simulated camera (`clock_start + index * frame_interval`), a video file
is placed at `clock_start` (its frames at `clock_start + position in the video`), a live stream uses the
wall clock. A fixed `clock_start` lets end-to-end tests replay visits on different days.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from edge.detector import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


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
    if source.lower().startswith(STREAM_SCHEMES):
        return SourceKind.STREAM
    path = Path(source)
    if path.is_dir():
        return SourceKind.IMAGES
    if path.is_file():
        return SourceKind.VIDEO
    raise SourceError(f"source {source} is neither an image folder, a video file nor an rtsp/http URL")


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


def _open_capture(source: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise SourceError(f"cannot open {source} with OpenCV's FFmpeg backend")
    return capture


def video_file_frames(path: Path, clock_start: datetime, fps: float) -> Iterator[Frame]:
    """Frames sampled at about `fps` (never more than the file's own rate), stamped by video position."""
    capture = _open_capture(str(path))
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


def stream_frames(url: str, fps: float) -> Iterator[Frame]:
    """Live frames at about `fps`, stamped with the wall clock; every frame is grabbed so none go stale."""
    capture = _open_capture(url)
    next_sample, index = 0.0, 0
    try:
        while capture.grab():
            now = datetime.now(UTC)
            if now.timestamp() < next_sample:
                continue
            ok, image = capture.retrieve()
            if not ok:
                raise SourceError(f"cannot decode a frame of {url}")
            next_sample = now.timestamp() + 1.0 / fps
            yield Frame(index, now, np.asarray(image, dtype=np.uint8), f"frame {index}")
            index += 1
    finally:
        capture.release()
    raise SourceError(f"stream {url} ended or broke")


def open_source(source: str, clock_start: datetime, frame_interval_seconds: float, fps: float) -> Iterator[Frame]:
    kind = source_kind(source)
    if kind is SourceKind.IMAGES:
        return image_folder_frames(Path(source), clock_start, frame_interval_seconds)
    if kind is SourceKind.VIDEO:
        return video_file_frames(Path(source), clock_start, fps)
    return stream_frames(source, fps)
