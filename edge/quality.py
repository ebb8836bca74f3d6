"""How good a face crop is for recognition, 0..1: sharpness, exposure, size, frontal pose, detector score.

Pure functions, so the per-track choice of the best crop is testable without images of people.
Each factor is 0..1 and they are combined by a weighted geometric mean: one very bad factor (a blurred,
dark or profile face) pulls the score down whatever the others say.

The score must predict recognisability, since it picks the crop a track publishes and the matcher's
floor turns tracks below it into unidentified sightings. Measured during development on 874 detections
of the motion benchmark's scenes (devstack/motion.py; not re-run by `make bench`): what best predicts
the similarity of a face to its owner's enrolment photos is sharpness in the blurriest direction,
relative to the face's contrast (Spearman 0.83), far ahead of the Laplacian variance used before
(0.74, which motion blur along one axis barely moves, and which a dark face lowers as much as a
blurred one); size and detector score add a little. Pose is kept at a fixed
weight although those scenes only have frontal faces: a profile face is known not to match.
"""

import math
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.detector import Box, Image, Point

FULL_SIZE_PX = 112.0
"""A face this wide (short side of the box) already has all the pixels the 112x112 embedder uses."""
SHARP_GRADIENT_RATIO = 0.4
"""Gradient energy in the blurriest direction over the contrast (variance) of the face at which sharpness is 0.5."""
GOOD_CONTRAST = 25.0
"""Standard deviation of the face's grey levels (0-255) from which its contrast no longer limits recognition."""
EXPOSURE_MARGIN = 40.0
"""Mean grey level this close to black or white starts to count as under- or over-exposed."""
FRONTAL_NOSE_DROP = 0.57
"""Where YuNet puts the nose of a frontal face between eye line (0) and mouth line (1); measured 0.52-0.64."""

WEIGHTS = {"size": 0.1, "sharpness": 1.0, "exposure": 0.2, "pose": 0.2, "detector": 0.2, "unoccluded": 0.5}
FACE_CENTRE = slice(16, 96)
"""The inner 80x80 of an aligned 112x112 face: eyes, nose and mouth, without background or hair."""


def size_score(short_side_px: float) -> float:
    return min(max(short_side_px / FULL_SIZE_PX, 0.0), 1.0)


def face_centre(aligned: Image) -> NDArray[np.float32]:
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY) if aligned.ndim == 3 else aligned
    return np.asarray(grey[FACE_CENTRE, FACE_CENTRE], dtype=np.float32)


def gradient_ratio(aligned: Image) -> float:
    """Mean squared gradient in the blurriest of the two axes, over the grey-level variance of the face.

    Motion blur along one axis removes that axis's gradients only; the minimum catches it. Dividing by
    the variance makes a dark or low-contrast face no blurrier than the same face well lit.
    """
    grey = face_centre(aligned)
    variance = float(grey.var())
    if variance < 1e-6:
        return 0.0
    along_x = float(np.square(cv2.Sobel(grey, cv2.CV_32F, 1, 0)).mean())
    along_y = float(np.square(cv2.Sobel(grey, cv2.CV_32F, 0, 1)).mean())
    return min(along_x, along_y) / variance


def sharpness_score(ratio: float) -> float:
    """Saturating map of the gradient ratio: 0 for a flat crop, 0.5 at the reference, towards 1."""
    return ratio / (ratio + SHARP_GRADIENT_RATIO) if ratio > 0 else 0.0


def exposure_score(aligned: Image) -> float:
    """1 for a well-contrasted, well-exposed face; towards 0 when flat, nearly black or nearly white."""
    grey = face_centre(aligned)
    contrast = min(float(grey.std()) / GOOD_CONTRAST, 1.0)
    mean = float(grey.mean())
    level = min(min(mean, 255.0 - mean) / EXPOSURE_MARGIN, 1.0)
    return max(contrast * level, 0.0)


def pose_score(landmarks: Sequence[Point]) -> float:
    """1 for a frontal face, towards 0 when turned (yaw) or tilted up/down (pitch), from the 5 landmarks.

    Yaw: the nose moves sideways from the midpoint of the eyes, relative to the eye distance.
    Pitch: the nose moves along the eyes-to-mouth axis away from its frontal position (`FRONTAL_NOSE_DROP`).
    Roll is ignored: alignment removes it.
    """
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = landmarks[:5]
    eye_mid, mouth_mid = np.array([(lx + rx) / 2, (ly + ry) / 2]), np.array([(mlx + mrx) / 2, (mly + mry) / 2])
    eye_axis = np.array([rx - lx, ry - ly])
    eye_distance = float(np.linalg.norm(eye_axis))
    vertical = mouth_mid - eye_mid
    face_height = float(np.linalg.norm(vertical))
    if eye_distance < 1e-6 or face_height < 1e-6:
        return 0.0
    nose = np.array([nx, ny]) - eye_mid
    yaw = abs(float(nose @ eye_axis)) / eye_distance**2  # 0 frontal, ~0.5 profile
    pitch = abs(float(nose @ vertical) / face_height**2 - FRONTAL_NOSE_DROP)  # 0 frontal
    return max(0.0, 1.0 - 2.0 * yaw) * max(0.0, 1.0 - 3.0 * pitch)


def combine(factors: dict[str, float]) -> float:
    """Weighted geometric mean of 0..1 factors (a zero factor gives 0)."""
    if any(factors[name] <= 0 for name in WEIGHTS):
        return 0.0
    total = sum(WEIGHTS.values())
    return math.exp(sum(weight * math.log(min(factors[name], 1.0)) for name, weight in WEIGHTS.items()) / total)


def unoccluded_score(box: Box, inside_frame: float, others: Sequence[Box]) -> float:
    """How much of the face is there to see, 0..1: the share of its aligned centre inside the frame
    (`edge.align.share_inside_frame`) times the share of its box clear of the other faces' boxes, squared
    (a face cut by the frame's edge or half hidden behind another shopper embeds far worse than its share
    suggests)."""
    area = box.width * box.height
    if area <= 0:
        return 0.0
    hidden = max((overlap_area(box, other) for other in others), default=0.0)
    clear = max(area - hidden, 0.0) / area
    return (min(max(inside_frame, 0.0), 1.0) * clear) ** 2


def overlap_area(a: Box, b: Box) -> float:
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    return width * height if width > 0 and height > 0 else 0.0


def face_quality(
    short_side_px: float, aligned: Image, landmarks: Sequence[Point], detector_score: float, unoccluded: float = 1.0
) -> float:
    """The quality of one detected face, 0..1, higher is a better crop to recognise."""
    return combine(
        {
            "unoccluded": unoccluded,
            "size": size_score(short_side_px),
            "sharpness": sharpness_score(gradient_ratio(aligned)),
            "exposure": exposure_score(aligned),
            "pose": pose_score(landmarks),
            "detector": min(max(detector_score, 0.0), 1.0),
        }
    )
