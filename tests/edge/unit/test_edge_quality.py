"""Quality scoring: each factor moves the score the way a recogniser would want."""

import cv2
import numpy as np
import pytest

from edge.align import share_inside_frame, template_transform
from edge.detector import Box
from edge.quality import (
    combine,
    exposure_score,
    face_quality,
    gradient_ratio,
    pose_score,
    sharpness_score,
    size_score,
    unoccluded_score,
)

# The ArcFace template itself: a perfectly frontal face (with YuNet's lower nose, see FRONTAL_NOSE_DROP).
FRONTAL = [(38.3, 51.7), (73.5, 51.5), (56.0, 75.0), (41.5, 92.4), (70.7, 92.2)]


def textured_face() -> np.ndarray:  # type: ignore[type-arg]
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)


def test_size_score_grows_with_face_size_and_saturates():
    assert size_score(28) == pytest.approx(0.25)
    assert size_score(56) < size_score(112) == 1.0 == size_score(400)


def test_frontal_pose_scores_higher_than_turned_or_tilted():
    turned = [FRONTAL[0], FRONTAL[1], (70.0, 75.0), FRONTAL[3], FRONTAL[4]]  # nose near the right eye
    tilted = [FRONTAL[0], FRONTAL[1], (56.0, 60.0), FRONTAL[3], FRONTAL[4]]  # nose up at the eyes
    assert pose_score(FRONTAL) > 0.9
    assert pose_score(turned) < 0.5
    assert pose_score(tilted) < 0.5


def test_degenerate_landmarks_have_zero_pose():
    assert pose_score([(10.0, 10.0)] * 5) == 0.0


def test_blur_lowers_sharpness():
    sharp = textured_face()
    blurred = np.asarray(cv2.GaussianBlur(sharp, (0, 0), 4), dtype=np.uint8)
    assert sharpness_score(gradient_ratio(blurred)) < sharpness_score(gradient_ratio(sharp))
    assert sharpness_score(0.0) == 0.0


def test_motion_blur_along_one_axis_lowers_sharpness_as_much_as_blur_along_both():
    sharp = np.asarray(cv2.GaussianBlur(textured_face(), (0, 0), 1), dtype=np.uint8)
    kernel = np.zeros((15, 15), dtype=np.float32)
    kernel[7, :] = 1 / 15
    smeared = np.asarray(cv2.filter2D(sharp, -1, kernel), dtype=np.uint8)  # a face moving sideways
    assert gradient_ratio(smeared) < 0.25 * gradient_ratio(sharp)


def test_a_darker_face_is_no_blurrier_but_scores_lower_exposure():
    face = np.asarray(cv2.GaussianBlur(textured_face(), (0, 0), 1), dtype=np.uint8)
    dark = (face.astype(np.float32) * 0.25).astype(np.uint8)
    assert gradient_ratio(dark) == pytest.approx(gradient_ratio(face), rel=0.15)
    assert exposure_score(dark) < 0.5 < exposure_score(face)
    assert exposure_score(np.full((112, 112, 3), 128, dtype=np.uint8)) == 0.0


def test_combine_is_zero_when_any_factor_is_zero_and_one_when_all_are_one():
    ones = {"size": 1.0, "sharpness": 1.0, "exposure": 1.0, "pose": 1.0, "detector": 1.0, "unoccluded": 1.0}
    assert combine(ones) == pytest.approx(1.0)
    assert combine(ones | {"pose": 0.0}) == 0.0


def test_face_quality_is_within_bounds_and_follows_detector_score():
    face = textured_face()
    high = face_quality(150, face, FRONTAL, 0.95)
    low = face_quality(150, face, FRONTAL, 0.5)
    assert 0.0 < low < high <= 1.0


def test_a_face_cut_by_the_frame_edge_or_half_behind_another_scores_lower():
    box = Box(500, 300, 100, 100)
    assert unoccluded_score(box, 1.0, []) == 1.0
    assert unoccluded_score(box, 0.7, []) == pytest.approx(0.49)  # 30% of its centre outside the frame
    assert unoccluded_score(box, 1.0, [Box(550, 300, 100, 100)]) == pytest.approx(0.25)  # half behind another


FRONTAL_AT_500 = ((535.0, 340.0), (565.0, 340.0), (550.0, 357.0), (538.0, 372.0), (562.0, 372.0))


def test_a_face_inside_the_frame_has_all_its_centre_inside_even_when_it_fills_the_frame():
    assert share_inside_frame(template_transform(FRONTAL_AT_500), 1280, 720) == 1.0
    close_up = tuple((x - 500, y - 300) for x, y in FRONTAL_AT_500)  # the face fills a 100x100 photo
    assert share_inside_frame(template_transform(close_up), 100, 100) == 1.0


def test_a_face_half_out_of_the_frame_has_part_of_its_centre_outside():
    half_out = tuple((x - 550, y) for x, y in FRONTAL_AT_500)  # its nose on the left edge
    assert 0.3 < share_inside_frame(template_transform(half_out), 1280, 720) < 0.7
