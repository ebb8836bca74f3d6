"""YuNet's head decoding (the onnxruntime path) on hand-made outputs."""

import math

import numpy as np
import pytest

from edge.detector import decode_yunet, non_maximum_suppression, pad_to_stride


def heads(width: int, height: int) -> dict[str, np.ndarray]:
    outputs: dict[str, np.ndarray] = {}
    for stride in (8, 16, 32):
        anchors = (width // stride) * (height // stride)
        outputs |= {
            f"cls_{stride}": np.zeros((1, anchors, 1), np.float32),
            f"obj_{stride}": np.zeros((1, anchors, 1), np.float32),
            f"bbox_{stride}": np.zeros((1, anchors, 4), np.float32),
            f"kps_{stride}": np.zeros((1, anchors, 10), np.float32),
        }
    return outputs


def test_one_anchor_decodes_to_its_box_landmarks_and_score():
    outputs = heads(64, 32)
    anchor = 1 * (64 // 16) + 2  # stride 16, row 1, column 2
    outputs["cls_16"][0, anchor, 0], outputs["obj_16"][0, anchor, 0] = 0.81, 1.2  # obj clipped to 1
    outputs["bbox_16"][0, anchor] = [0.5, 0.5, math.log(2), math.log(2)]
    outputs["kps_16"][0, anchor] = [0, 0, 1, 0, 0.5, 0.5, 0, 1, 1, 1]
    [row] = decode_yunet(outputs, (64, 32), score_threshold=0.5)
    assert row[:4] == pytest.approx([24, 8, 32, 32])  # centre (40, 24), size 32
    assert row[4:14] == pytest.approx([32, 16, 48, 16, 40, 24, 32, 32, 48, 32])
    assert row[14] == pytest.approx(0.9)  # sqrt(0.81 * 1)
    assert len(decode_yunet(outputs, (64, 32), score_threshold=0.95)) == 0


def test_nms_keeps_the_best_of_overlapping_boxes():
    rows = np.zeros((3, 15), np.float32)
    rows[:, :4] = [[10, 10, 40, 40], [12, 11, 40, 40], [100, 100, 30, 30]]
    rows[:, 14] = [0.8, 0.9, 0.75]
    kept = non_maximum_suppression(rows, 0.7)
    assert [round(float(score), 2) for score in kept[:, 14]] == [0.9, 0.75]


def test_pad_to_stride_pads_bottom_right_only():
    image = np.full((360, 630, 3), 7, np.uint8)
    padded = pad_to_stride(image)
    assert padded.shape == (384, 640, 3)
    assert (padded[:360, :630] == 7).all() and padded[360:].max() == 0
    assert pad_to_stride(padded) is padded
