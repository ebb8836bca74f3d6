"""How good a face crop is for recognition, 0..1: size, sharpness, frontal pose and detector score.

Pure functions, so the per-track choice of the best crop is testable without images of people.
Each factor is 0..1 and they are combined by a weighted geometric mean: one very bad factor (a blurred
or profile face) pulls the score down whatever the others say.
"""

import math
from collections.abc import Sequence

import cv2
import numpy as np

from edge.detector import Image, Point

FULL_SIZE_PX = 112.0
"""A face this wide (short side of the box) already has all the pixels the 112x112 embedder uses."""
SHARP_LAPLACIAN_VARIANCE = 150.0
"""Variance of the Laplacian of the aligned crop at which the sharpness score reaches 0.5."""
FRONTAL_NOSE_DROP = 0.57
"""Where YuNet puts the nose of a frontal face between eye line (0) and mouth line (1); measured 0.52-0.64."""

WEIGHTS = {"size": 0.25, "sharpness": 0.25, "pose": 0.3, "detector": 0.2}


def size_score(short_side_px: float) -> float:
    return min(max(short_side_px / FULL_SIZE_PX, 0.0), 1.0)


def laplacian_variance(image: Image) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def sharpness_score(variance: float) -> float:
    """Saturating map of the Laplacian variance: 0 for a flat crop, 0.5 at the reference, towards 1."""
    return variance / (variance + SHARP_LAPLACIAN_VARIANCE) if variance > 0 else 0.0


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


def face_quality(short_side_px: float, aligned: Image, landmarks: Sequence[Point], detector_score: float) -> float:
    """The quality of one detected face, 0..1, higher is a better crop to recognise."""
    return combine(
        {
            "size": size_score(short_side_px),
            "sharpness": sharpness_score(laplacian_variance(aligned)),
            "pose": pose_score(landmarks),
            "detector": min(max(detector_score, 0.0), 1.0),
        }
    )
