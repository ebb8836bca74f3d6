"""Face detection on a downscaled frame, with boxes and 5 landmarks mapped back to full resolution.

Three implementations behind `Detector` (setting `detector`):
- `yunet`: YuNet through `cv2.FaceDetectorYN`.
- `yunet_ort`: the same network through onnxruntime with the decoding OpenCV does done here in numpy.
  PROVENANCE measured the network at ~16 ms vs ~30 ms through cv2 at 640x360 on one core; the
  equivalence test and docs/BENCHMARKS.md compare both paths on the shared photos.
- `scrfd`: InsightFace's SCRFD (`insightface.model_zoo.get_model`), when its weights are in the pack.
"""

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort
from insightface.model_zoo import get_model
from numpy.typing import NDArray

Image = NDArray[np.uint8]
"""A BGR frame, as OpenCV decodes it."""

Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in full-frame pixels."""

    x: float
    y: float
    width: float
    height: float

    @property
    def short_side(self) -> float:
        return min(self.width, self.height)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 when they do not overlap."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.width * a.height + b.width * b.height - inter)


@dataclass(frozen=True)
class Detection:
    """One face: box, landmarks (eye on the image left, other eye, nose, mouth left, mouth right), score."""

    box: Box
    landmarks: tuple[Point, Point, Point, Point, Point]
    score: float


class DetectorKind(StrEnum):
    YUNET = "yunet"
    YUNET_ORT = "yunet_ort"
    SCRFD = "scrfd"


NMS_IOU = 0.3
"""IoU above which the weaker of two boxes is dropped: OpenCV's FaceDetectorYN default."""
TOP_K = 5000


class Detector(Protocol):
    def detect(self, frame: Image) -> list[Detection]:
        """Faces of a BGR frame, in full-frame pixels."""
        ...


def downscale(frame: Image, max_width: int) -> tuple[Image, float]:
    """The frame resized to at most `max_width` wide, and the factor from small to full coordinates."""
    height, width = frame.shape[:2]
    if width <= max_width:
        return frame, 1.0
    scale = width / max_width
    small = cv2.resize(frame, (max_width, round(height / scale)), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8), scale


def yunet_row_to_detection(row: NDArray[np.float32], scale: float) -> Detection:
    """A `FaceDetectorYN` row (x, y, w, h, 5 landmark x/y pairs, score) scaled by `scale`."""
    values = [float(value) * scale for value in row[:14]]
    points = [(values[4 + 2 * i], values[5 + 2 * i]) for i in range(5)]
    return Detection(
        box=Box(values[0], values[1], values[2], values[3]),
        landmarks=(points[0], points[1], points[2], points[3], points[4]),
        score=min(max(float(row[14]), 0.0), 1.0),
    )


class YuNetDetector:
    """YuNet via OpenCV; one instance per camera thread (`setInputSize` mutates it)."""

    def __init__(self, model_path: Path, input_width: int, score_threshold: float) -> None:
        # OpenCV 5 warns at every create that its new graph engine ignores targets: noise, not a problem.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        self._input_width = input_width
        self._size = (input_width, input_width)
        self._net = cv2.FaceDetectorYN.create(str(model_path), "", self._size, score_threshold, 0.3, 5000)

    def detect(self, frame: Image) -> list[Detection]:
        small, scale = downscale(frame, self._input_width)
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(small)
        if faces is None:
            return []
        return [yunet_row_to_detection(row, scale) for row in faces]


YUNET_STRIDES = (8, 16, 32)


def pad_to_stride(image: Image, stride: int = 32) -> Image:
    """Zero-pad bottom and right to multiples of `stride`, as FaceDetectorYN does before inference."""
    height, width = image.shape[:2]
    pad_h, pad_w = -height % stride, -width % stride
    if not pad_h and not pad_w:
        return image
    return np.asarray(cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0), dtype=np.uint8)


def decode_yunet(
    outputs: dict[str, NDArray[np.float32]], padded_size: tuple[int, int], score_threshold: float
) -> NDArray[np.float32]:
    """YuNet's raw heads to `FaceDetectorYN` rows (x, y, w, h, 5 landmark pairs, score), before NMS.

    Per stride s, anchor (row r, col c) of a `padded_size` (w, h) input: score = sqrt(cls * obj) (both
    clipped to 0..1), centre = ((c, r) + bbox[:2]) * s, size = exp(bbox[2:]) * s, landmark k =
    ((c, r) + kps[2k:2k+2]) * s. This is OpenCV's decoding (modules/objdetect/src/face_detect.cpp).
    """
    width, height = padded_size
    rows = []
    for stride in YUNET_STRIDES:
        cols_n, rows_n = width // stride, height // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
        if cls.size != cols_n * rows_n:
            raise ValueError(f"stride {stride}: {cls.size} anchors for a {width}x{height} input")
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
        scores = np.sqrt(cls * obj)
        keep = np.flatnonzero(scores >= score_threshold)
        if keep.size == 0:
            continue
        grid = np.stack([keep % cols_n, keep // cols_n], axis=1).astype(np.float32)
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        kps = outputs[f"kps_{stride}"].reshape(-1, 10)[keep]
        centre = (grid + bbox[:, :2]) * stride
        size = np.exp(bbox[:, 2:]) * stride
        landmarks = (np.tile(grid, 5) + kps) * stride
        rows.append(np.hstack([centre - size / 2, size, landmarks, scores[keep, None]]).astype(np.float32))
    return np.vstack(rows) if rows else np.zeros((0, 15), dtype=np.float32)


def non_maximum_suppression(rows: NDArray[np.float32], score_threshold: float) -> NDArray[np.float32]:
    """The rows kept by OpenCV's NMS on (x, y, w, h) boxes and scores, best first."""
    if len(rows) == 0:
        return rows
    boxes = [[float(v) for v in row[:4]] for row in rows]
    keep = cv2.dnn.NMSBoxes(boxes, [float(row[14]) for row in rows], score_threshold, NMS_IOU, top_k=TOP_K)
    return rows[np.asarray(keep, dtype=np.int64).reshape(-1)]


def cpu_session(model: Path | bytes, intra_op_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model if isinstance(model, bytes) else str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )


class OrtYuNetDetector:
    """YuNet on onnxruntime: the cv2 path's network and decoding without OpenCV's DNN engine overhead."""

    def __init__(self, model_path: Path, input_width: int, score_threshold: float, intra_op_threads: int) -> None:
        self._session = cpu_session(model_path, intra_op_threads)
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]
        self._input_width, self._threshold = input_width, score_threshold

    def detect(self, frame: Image) -> list[Detection]:
        small, scale = downscale(frame, self._input_width)
        padded = pad_to_stride(small)
        blob = padded.transpose(2, 0, 1)[None].astype(np.float32)  # BGR, 0..255, as FaceDetectorYN feeds it
        values = self._session.run(self._outputs, {self._input: blob})
        outputs = {name: np.asarray(value, dtype=np.float32) for name, value in zip(self._outputs, values, strict=True)}
        rows = decode_yunet(outputs, (padded.shape[1], padded.shape[0]), self._threshold)
        return [yunet_row_to_detection(row, scale) for row in non_maximum_suppression(rows, self._threshold)]


class ScrfdDetector:
    """SCRFD through insightface (its own letterbox, decoding and NMS); about 7x slower than YuNet here."""

    def __init__(self, model_path: Path, input_width: int, score_threshold: float, intra_op_threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self._model = get_model(str(model_path), providers=["CPUExecutionProvider"], sess_options=options)
        self._model.prepare(ctx_id=-1, det_thresh=score_threshold, nms_thresh=0.4)
        self._input_width, self._threshold = input_width, score_threshold

    def detect(self, frame: Image) -> list[Detection]:
        small, scale = downscale(frame, self._input_width)
        padded = pad_to_stride(small)
        boxes, keypoints = self._model.detect(small, input_size=(padded.shape[1], padded.shape[0]))
        detections = []
        for box, points in zip(boxes, keypoints if keypoints is not None else [], strict=True):
            x1, y1, x2, y2 = (float(value) * scale for value in box[:4])
            landmarks = [(float(x) * scale, float(y) * scale) for x, y in points]
            detections.append(
                Detection(
                    Box(x1, y1, x2 - x1, y2 - y1),
                    (landmarks[0], landmarks[1], landmarks[2], landmarks[3], landmarks[4]),
                    min(max(float(box[4]), 0.0), 1.0),
                )
            )
        return detections
