"""The detectors behind `Detector` on the shared photos: YuNet through onnxruntime finds what cv2 finds."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bootstrap import build_detector, resolve_detector_model
from edge.detector import DetectorKind, iou
from edge.sources import image_files


@pytest.fixture(scope="module")
def photos(faces_dir: Path) -> list[tuple[str, np.ndarray]]:
    return [(path.name, np.asarray(cv2.imread(str(path)))) for path in image_files(faces_dir)]


def detector(settings, kind: DetectorKind):
    chosen = settings.model_copy(update={"detector": kind})
    return build_detector(chosen, resolve_detector_model(chosen))


def test_yunet_on_onnxruntime_finds_the_same_faces_as_opencv(edge_settings, photos):
    opencv, ort = detector(edge_settings, DetectorKind.YUNET), detector(edge_settings, DetectorKind.YUNET_ORT)
    compared = 0
    for name, image in photos:
        expected, found = opencv.detect(image), ort.detect(image)
        assert len(found) == len(expected), name
        for face in expected:
            twin = max(found, key=lambda other: iou(face.box, other.box))
            assert iou(face.box, twin.box) > 0.9, name
            assert np.allclose(face.landmarks, twin.landmarks, atol=1.0), name
            assert twin.score == pytest.approx(face.score, abs=1e-3), name
            compared += 1
    assert compared >= 40  # every labelled photo, the group of six, the pairs


def test_scrfd_finds_the_six_faces_of_the_group_photo(edge_settings, faces_dir):
    group = cv2.imread(str(faces_dir / "misc" / "group_of_six.jpg"))
    faces = detector(edge_settings, DetectorKind.SCRFD).detect(group)
    assert len(faces) == 6
    yunet = detector(edge_settings, DetectorKind.YUNET_ORT).detect(group)
    assert all(max(iou(face.box, other.box) for other in yunet) > 0.5 for face in faces)
    assert all(face.box.x <= face.landmarks[2][0] <= face.box.x + face.box.width for face in faces)
