"""Is a live stream still showing the scene? Frozen (the same picture) or black (no light, a capped lens).

A camera that keeps sending frames can still be useless: an encoder stuck on one picture, a covered
lens, a night without IR. Neither breaks the connection, so neither is noticed by reconnect logic; an
operator needs a warning and a gauge. The decision is pure logic over per-frame statistics (mean
luminance and change from the previous frame), computed on a small grey thumbnail so it costs ~0.1 ms.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.detector import Image

THUMBNAIL_SIZE = (64, 36)
UNCHANGED_MEAN_DIFF = 0.5
"""Mean absolute grey difference (0..255) under which two frames are the same picture. Sensor noise of a
live scene is several units; a frozen decoder repeats the frame exactly (0), a re-encoded freeze stays
well under 0.5."""


@dataclass(frozen=True)
class FrameStats:
    luma: float
    """Mean luminance, 0..255."""
    change: float | None
    """Mean absolute difference from the previous frame's thumbnail, 0..255 (None for the first frame)."""


def thumbnail(image: Image) -> NDArray[np.uint8]:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return np.asarray(cv2.resize(grey, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def frame_stats(small: NDArray[np.uint8], previous: NDArray[np.uint8] | None) -> FrameStats:
    change = None if previous is None else float(np.abs(small.astype(np.int16) - previous).mean())
    return FrameStats(float(small.mean()), change)


@dataclass(frozen=True)
class StreamCondition:
    frozen: bool
    black: bool


@dataclass
class StreamMonitor:
    """Frozen: no change for `frozen_seconds`. Black: mean luminance under `black_luma` for `black_seconds`."""

    frozen_seconds: float
    black_seconds: float
    black_luma: float
    _unchanged_since: float | None = field(default=None, init=False)
    _dark_since: float | None = field(default=None, init=False)

    def observe(self, stats: FrameStats, now: float) -> StreamCondition:
        unchanged = stats.change is not None and stats.change < UNCHANGED_MEAN_DIFF
        self._unchanged_since = _since(self._unchanged_since, unchanged, now)
        self._dark_since = _since(self._dark_since, stats.luma < self.black_luma, now)
        return StreamCondition(
            frozen=self._unchanged_since is not None and now - self._unchanged_since >= self.frozen_seconds,
            black=self._dark_since is not None and now - self._dark_since >= self.black_seconds,
        )

    def reset(self) -> None:
        """A new connection: what was seen before says nothing about it."""
        self._unchanged_since = self._dark_since = None


def _since(start: float | None, holds: bool, now: float) -> float | None:
    """When a condition that holds now began (None when it does not hold)."""
    if not holds:
        return None
    return now if start is None else start
