"""Alignment to the 112x112 ArcFace template, and the JPEG crop of the box that events carry."""

import warnings
from collections.abc import Sequence

import cv2
import numpy as np
from insightface.utils.face_align import norm_crop

from edge.detector import Box, Image, Point

ALIGNED_SIZE = 112

# insightface 2.1 calls scikit-image's deprecated `SimilarityTransform.estimate`: correct today, and a
# warning per process is noise on the edge's terminal. The pinned versions are tested together.
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)


def align_face(frame: Image, landmarks: Sequence[Point]) -> Image:
    """The face warped by a similarity transform of its 5 landmarks onto the ArcFace template (BGR)."""
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    return np.asarray(norm_crop(frame, points, image_size=ALIGNED_SIZE), dtype=np.uint8)


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
