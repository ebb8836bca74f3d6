"""Alignment to the 112x112 ArcFace template, and the JPEG crop of the box that events carry."""

import warnings
from collections.abc import Sequence

import cv2
import numpy as np
from insightface.utils.face_align import estimate_norm
from numpy.typing import NDArray

from edge.detector import Box, Image, Point

ALIGNED_SIZE = 112

# insightface 2.1 calls scikit-image's deprecated `SimilarityTransform.estimate`: correct today, and a
# warning per process is noise on the edge's terminal. The pinned versions are tested together.
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)


Transform = NDArray[np.float64]
"""A 2x3 affine matrix from frame to aligned-face coordinates."""


def template_transform(landmarks: Sequence[Point]) -> Transform:
    """The similarity transform of the 5 landmarks onto the ArcFace template (insightface's own estimate)."""
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    return np.asarray(estimate_norm(points, ALIGNED_SIZE), dtype=np.float64)


def align_face(frame: Image, landmarks: Sequence[Point], transform: Transform | None = None) -> Image:
    """The face warped onto the ArcFace template (BGR), as insightface's `norm_crop` does; pass the
    `transform` when it is already computed."""
    matrix = template_transform(landmarks) if transform is None else transform
    return np.asarray(cv2.warpAffine(frame, matrix, (ALIGNED_SIZE, ALIGNED_SIZE), borderValue=0.0), dtype=np.uint8)


_CENTRE_GRID = np.array([(x, y, 1.0) for x in np.linspace(16, 96, 9) for y in np.linspace(16, 96, 9)])
"""Points over the inner 80x80 of the aligned face (eyes, nose, mouth), in homogeneous coordinates."""


def share_inside_frame(transform: Transform, width: int, height: int) -> float:
    """Share of the aligned face's centre that has image behind it, 0..1.

    Where a face is cut by the frame's edge, the alignment places the missing part outside the frame and
    fills it with black; the box cannot tell, since the detector sees only the visible part. A close-up
    portrait whose face fills the frame is not cut, and scores 1. Measured on the motion scenes: below 0.95
    for every face more than 5% outside the frame (22 of 590 detections), for no face wholly inside.
    """
    to_frame = cv2.invertAffineTransform(transform)
    mapped = _CENTRE_GRID @ to_frame.T
    inside = (mapped[:, 0] >= 0) & (mapped[:, 0] < width) & (mapped[:, 1] >= 0) & (mapped[:, 1] < height)
    return float(inside.mean())


def crop_box(frame: Image, box: Box, margin: float) -> Image:
    """The box enlarged by `margin` of its size on each side, clipped to the frame (a copy)."""
    height, width = frame.shape[:2]
    pad_x, pad_y = box.width * margin, box.height * margin
    left, top = max(int(box.x - pad_x), 0), max(int(box.y - pad_y), 0)
    right = min(int(box.x + box.width + pad_x), width)
    bottom = min(int(box.y + box.height + pad_y), height)
    return frame[top:bottom, left:right].copy()


def encode_jpeg(image: Image, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a crop of shape {image.shape} as JPEG")
    return bytes(encoded.tobytes())


FALLBACK_JPEG_QUALITIES = (75, 60, 45)
"""Tried in turn, below the configured quality, before a crop is made smaller: a face stays recognisable to a
person well under quality 75, while losing pixels loses detail for good."""
DOWNSCALE_STEP = 0.75
MIN_CROP_SIDE = 24
"""Below this many pixels on its short side a crop shows nobody; the event is sent without one instead."""


def encode_jpeg_within(image: Image, quality: int, max_bytes: int) -> bytes | None:
    """The crop as a JPEG of at most `max_bytes`: at `quality` if it fits, else at lower qualities, else made
    smaller in steps of 3/4. None when even a crop of `MIN_CROP_SIDE` pixels does not fit, so the event is
    sent without one: a crop too large for the bus would block the outbox, and ingest would refuse it."""
    qualities = [quality, *(q for q in FALLBACK_JPEG_QUALITIES if q < quality)]
    for encoded in (encode_jpeg(image, q) for q in qualities):
        if len(encoded) <= max_bytes:
            return encoded
    height, width = image.shape[:2]
    scale = DOWNSCALE_STEP
    while min(height, width) * scale >= MIN_CROP_SIDE:
        size = (round(width * scale), round(height * scale))  # each step from the original: no compounded blur
        smaller = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        encoded = encode_jpeg(smaller, qualities[-1])
        if len(encoded) <= max_bytes:
            return encoded
        scale *= DOWNSCALE_STEP
    return None
