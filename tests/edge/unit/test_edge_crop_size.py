"""Crops fit the bus: re-encoded at lower JPEG quality, then made smaller, never over their byte budget."""

import json

import cv2
import numpy as np

from edge.align import encode_jpeg, encode_jpeg_within
from edge.pipeline import HEADERS_ALLOWANCE, crop_budget
from schemas.export import EXAMPLES_DIR
from schemas.faces import FaceDetected


def noisy_face(side: int) -> np.ndarray:
    """Noise is the worst case for JPEG: a crop of this many pixels cannot be smaller."""
    return np.random.default_rng(7).integers(0, 256, size=(side, side, 3), dtype=np.uint8)


def test_a_crop_that_fits_is_encoded_at_the_configured_quality():
    image = np.asarray(cv2.GaussianBlur(noisy_face(120), (0, 0), 3), dtype=np.uint8)
    assert encode_jpeg_within(image, 90, 1_000_000) == encode_jpeg(image, 90)


def test_a_large_crop_is_re_encoded_smaller_until_it_fits():
    image = noisy_face(1200)
    assert len(encode_jpeg(image, 90)) > 1_048_576
    for budget in (200_000, 50_000, 5_000):
        fitted = encode_jpeg_within(image, 90, budget)
        assert fitted is not None and len(fitted) <= budget
        decoded = cv2.imdecode(np.frombuffer(fitted, np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None and min(decoded.shape[:2]) >= 24


def test_a_crop_that_cannot_fit_is_left_out():
    assert encode_jpeg_within(noisy_face(800), 90, 300) is None


def test_the_crop_budget_keeps_the_event_under_the_max_payload():
    example = json.loads((EXAMPLES_DIR / "FaceDetected.v1.json").read_text()) | {"crop_jpeg": None}
    event = FaceDetected.model_validate(example)
    without = len(event.to_json_bytes())
    for max_payload in (16_384, 65_536, 1_048_576):
        budget = crop_budget(without, max_payload)
        full = event.model_copy(update={"crop_jpeg": b"\xff" * budget})
        assert max_payload - HEADERS_ALLOWANCE - 4 <= len(full.to_json_bytes()) <= max_payload - HEADERS_ALLOWANCE
