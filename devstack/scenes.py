"""Synthetic camera scenes composed from the labelled photos of ../shared/faces: frames with a chosen
number of faces, and videos of people crossing the frame. The edge benchmarks and the edge video test
use the same scenes, so "N people make about N events" is measured and asserted on one definition."""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from devstack.stack import shared_dir
from edge.detector import Detector

CROWD = (
    "obama/obama_1.jpg",
    "biden/biden_1.jpg",
    "kit_harington/kit_harington_1.jpg",
    "rose_leslie/rose_leslie_1.jpg",
    "amy_adams/amy_adams_1.jpg",
)


def face_crops(detector: Detector) -> list[np.ndarray]:
    """Head-and-shoulders crops of five different people, from the labelled photos."""
    crops = []
    for relative in CROWD:
        image = np.asarray(cv2.imread(str(shared_dir() / "faces" / relative)), dtype=np.uint8)
        box = max(detector.detect(image), key=lambda d: d.box.width * d.box.height).box
        pad = box.width * 0.5
        top, left = max(int(box.y - pad), 0), max(int(box.x - pad), 0)
        crops.append(image[top : int(box.y + box.height + pad), left : int(box.x + box.width + pad)].copy())
    return crops


def background(width: int, height: int) -> np.ndarray:
    ramp = np.linspace(90, 150, width, dtype=np.float32)
    return np.repeat(np.stack([ramp, ramp * 0.95, ramp * 0.9], axis=1)[None], height, axis=0).astype(np.uint8)


def paste(canvas: np.ndarray, crop: np.ndarray, x: int, y: int, height: int) -> None:
    """Paste `crop` scaled to `height` with its top-left at (x, y), clipped to the canvas."""
    scaled = cv2.resize(crop, (round(crop.shape[1] * height / crop.shape[0]), height), interpolation=cv2.INTER_AREA)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + scaled.shape[1], canvas.shape[1]), min(y + scaled.shape[0], canvas.shape[0])
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = scaled[y0 - y : y1 - y, x0 - x : x1 - x]


def composed_frame(size: tuple[int, int], crops: list[np.ndarray], faces: int) -> np.ndarray:
    width, height = size
    canvas = background(width, height)
    crop_height = height // 3
    for index in range(faces):
        paste(canvas, crops[index], int((index + 0.1) * width / max(faces, 1)), height // 3, crop_height)
    return canvas


@dataclass(frozen=True)
class Walker:
    crop: np.ndarray
    enter: float
    leave: float
    y: int


def write_video(path: Path, crops: list[np.ndarray], size: tuple[int, int], fps: int, seconds: int) -> int:
    """People crossing the frame left to right, overlapping in time; returns the number of person-visits."""
    width, height = size
    walkers = [Walker(crop, enter=i * 3.5, leave=i * 3.5 + 6.0, y=120 + (i % 2) * 180) for i, crop in enumerate(crops)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    crop_height = height // 3
    for index in range(seconds * fps):
        now, canvas = index / fps, background(width, height)
        for walker in walkers:
            if walker.enter <= now <= walker.leave:
                progress = (now - walker.enter) / (walker.leave - walker.enter)
                paste(canvas, walker.crop, int(-crop_height + progress * (width + crop_height)), walker.y, crop_height)
        writer.write(canvas)
    writer.release()
    return len(walkers)
