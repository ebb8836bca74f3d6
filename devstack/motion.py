"""Labelled motion scenes: people from ../shared/faces walking across a shop entrance, with the truth.

The edge's motion benchmark (`bench/bench_motion.py`) and its tests on the real models render these
scenes frame by frame at the fps under test, so every event the edge publishes can be traced to the
walker whose face it shows. A scene is data (`Walk`, `Stand`, `Pillar`, lighting), rendered without
a video file in between, so 5 and 10 fps see the same motion.

What a scene can hold, because each breaks naive trackers: faces of 50-200 px crossing a 1280 px frame
in 1.5-3 s (up to 3.4 face widths between two frames at 5 fps), a face growing as the person comes
closer, a vertical bob at walking cadence, motion blur from the exposure time, a lighting step (a door,
a shop window) and a darker half of the frame, people passing each other in opposite directions (the
front one hides the other), a pillar that hides a walker for part of the crossing, and a staff member
standing behind the counter. The people are still photos moved across the frame: real walkers also turn
their heads, which these scenes do not have (docs/edge.md says so).
"""

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from devstack.scenes import background
from devstack.stack import shared_dir
from edge.detector import Box, Detector, Image, iou
from edge.sources import Frame
from schemas import FaceDetected

FRAME_SIZE = (1280, 720)
EXPOSURE_SECONDS = 1 / 100
"""Shutter time of the motion blur of a walk with `blur`: the slowest docs/edge.md advises for an entrance
(a walker at 800 px/s smears 8 px). At 1/50 s a quarter of fast walkers are blurred past recognition."""
NOISE_SIGMA = 2.0
STEP_HZ, BOB_FACE_FRACTION = 1.8, 0.06
"""Walking cadence and vertical head bob, as a fraction of the face height."""

VISITOR_PHOTOS: dict[str, tuple[str, ...]] = {
    "obama": ("obama/obama_1.jpg", "obama/obama_2.jpg", "obama/obama_3.jpg", "obama/obama_4.jpg"),
    "biden": ("biden/biden_1.jpg", "biden/biden_2.jpg"),
    "alex_lacamoire": ("alex_lacamoire/alex_lacamoire_1.jpg", "alex_lacamoire/alex_lacamoire_3.jpg"),
    "kit_harington": ("kit_harington/kit_harington_1.jpg", "kit_harington/kit_harington_2.jpg"),
    "eric_clapton": ("eric_clapton/eric_clapton_1.jpg", "eric_clapton/eric_clapton_2.jpg"),
    "john_lennon": ("john_lennon/john_lennon_1.jpg", "john_lennon/john_lennon_2.jpg"),
    "amy_adams": ("amy_adams/amy_adams_1.jpg",),
    "steve_carell": ("steve_carell/steve_carell_1.jpg",),
    "tom_hanks": ("tom_hanks/tom_hanks_1.png",),
    "lin_manuel_miranda": ("lin_manuel_miranda/lin_manuel_miranda_1.png",),
}
"""Visitors and the photos they appear with: a returning visitor comes back with another photo when there is one."""
STAFF_PERSON = "rose_leslie"
STAFF_ENROLMENT_PHOTO = "rose_leslie/rose_leslie_1.jpg"
STAFF_SCENE_PHOTO = "rose_leslie/rose_leslie_2.jpg"
"""The staff member is enrolled from one photo and stands in the scenes with the other."""


@dataclass(frozen=True)
class Walk:
    """One person crossing the frame once: one person-visit."""

    person: str
    photo: str
    enter: float
    crossing_seconds: float
    """Time for the face to cross the frame's width."""
    leftwards: bool = False
    y: float = 0.4
    """Height of the face centre as a fraction of the frame's."""
    face_px: tuple[float, float] = (100.0, 100.0)
    """Face height when entering and when leaving (a person walking towards the camera grows)."""
    blur: bool = False


@dataclass(frozen=True)
class Stand:
    """A person standing still (the staff member behind the counter)."""

    person: str
    photo: str
    x: float
    y: float
    face_px: float
    start: float
    end: float


@dataclass(frozen=True)
class Pillar:
    """An occluder in front of the walkers between x0 and x1 (fractions of the width)."""

    x0: float
    x1: float


@dataclass(frozen=True)
class Lighting:
    """A global gain that steps at `step_at` seconds, and a darker left part of the frame."""

    gain: float = 1.0
    step_at: float | None = None
    gain_after: float = 1.0
    dark_left_fraction: float = 0.0
    dark_gain: float = 1.0

    def gain_at(self, now: float) -> float:
        return self.gain_after if self.step_at is not None and now >= self.step_at else self.gain


@dataclass(frozen=True)
class MotionScene:
    name: str
    seconds: float
    walks: tuple[Walk, ...]
    stands: tuple[Stand, ...] = ()
    pillars: tuple[Pillar, ...] = ()
    lighting: Lighting = field(default_factory=Lighting)


@dataclass(frozen=True)
class TruthFace:
    """Where a face is in a rendered frame: `walk` indexes the scene's walks, or is None for a standing person."""

    person: str
    walk: int | None
    box: Box
    visible_fraction: float


@dataclass(frozen=True)
class Portrait:
    """Head and shoulders cut from a photo, with the face box inside the cut."""

    image: Image
    face: Box


class Portraits:
    """Portraits cut once per photo with the edge's own detector."""

    def __init__(self, detector: Detector, faces_dir: Path | None = None) -> None:
        self._detector, self._faces = detector, faces_dir or shared_dir() / "faces"
        self._cache: dict[str, Portrait] = {}

    def __call__(self, relative: str) -> Portrait:
        if relative not in self._cache:
            self._cache[relative] = self._cut(relative)
        return self._cache[relative]

    def _cut(self, relative: str) -> Portrait:
        image = np.asarray(cv2.imread(str(self._faces / relative)), dtype=np.uint8)
        box = max(self._detector.detect(image), key=lambda d: d.box.width * d.box.height).box
        pad_x, pad_y = box.width * 0.6, box.height * 0.5
        left, top = max(int(box.x - pad_x), 0), max(int(box.y - pad_y), 0)
        right = min(int(box.x + box.width + pad_x), image.shape[1])
        bottom = min(int(box.y + box.height + pad_y * 1.6), image.shape[0])
        face = Box(box.x - left, box.y - top, box.width, box.height)
        return Portrait(np.ascontiguousarray(image[top:bottom, left:right]), face)


def walk_position(walk: Walk, now: float, width: int, height: int) -> tuple[float, float, float] | None:
    """Face centre (x, y) and face height of a walk at `now`, or None when it is not in the frame."""
    progress = (now - walk.enter) / walk.crossing_seconds
    size = walk.face_px[0] + (walk.face_px[1] - walk.face_px[0]) * min(max(progress, 0.0), 1.0)
    travel = width + 2 * size  # from fully outside on one side to fully outside on the other
    offset = -size + progress * travel
    if not 0.0 <= progress <= 1.0:
        return None
    x = width - offset if walk.leftwards else offset
    y = walk.y * height + BOB_FACE_FRACTION * size * math.sin(2 * math.pi * STEP_HZ * (now - walk.enter))
    return x, y, size


def walk_speed(walk: Walk, width: int) -> float:
    """Pixels per second of a walk's face."""
    mean_size = sum(walk.face_px) / 2
    return (width + 2 * mean_size) / walk.crossing_seconds


def motion_blur(image: Image, length_px: float) -> Image:
    """Horizontal motion blur over `length_px` pixels (the distance moved while the shutter was open)."""
    length = round(length_px)
    if length < 2:
        return image
    kernel = np.zeros((length, length), dtype=np.float32)
    kernel[length // 2, :] = 1.0 / length
    return np.asarray(cv2.filter2D(image, -1, kernel), dtype=np.uint8)


def paste_face(canvas: Image, portrait: Portrait, cx: float, cy: float, face_height: float, blur_px: float) -> Box:
    """Paste `portrait` scaled so its face is `face_height` tall and centred at (cx, cy); the face's box."""
    scale = face_height / portrait.face.height
    scaled = cv2.resize(
        portrait.image,
        (max(round(portrait.image.shape[1] * scale), 1), max(round(portrait.image.shape[0] * scale), 1)),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    scaled = motion_blur(np.asarray(scaled, dtype=np.uint8), blur_px)
    face = Box(portrait.face.x * scale, portrait.face.y * scale, portrait.face.width * scale, face_height)
    x = round(cx - face.x - face.width / 2)
    y = round(cy - face.y - face.height / 2)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + scaled.shape[1], canvas.shape[1]), min(y + scaled.shape[0], canvas.shape[0])
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = scaled[y0 - y : y1 - y, x0 - x : x1 - x]
    return Box(x + face.x, y + face.y, face.width, face.height)


def visible_fraction(box: Box, width: int, height: int, covers: list[Box]) -> float:
    """Share of the face box inside the frame and not under a later-drawn face or a pillar."""
    mask = np.zeros((max(int(box.height), 1), max(int(box.width), 1)), dtype=bool)
    mask[:] = True
    for cover in [Box(-1e9, -1e9, 1e9, 2e9 + height), Box(width, -1e9, 1e9, 2e9), *covers]:
        x0, x1 = int(max(cover.x - box.x, 0)), int(min(cover.x + cover.width - box.x, mask.shape[1]))
        y0, y1 = int(max(cover.y - box.y, 0)), int(min(cover.y + cover.height - box.y, mask.shape[0]))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = False
    return float(mask.mean())


class SceneRenderer:
    """Renders a scene's frames at a chosen fps, each with the truth of the faces in it."""

    def __init__(self, portraits: Portraits, size: tuple[int, int] = FRAME_SIZE, seed: int = 0) -> None:
        self._portraits, self.size = portraits, size
        noise = np.random.default_rng(seed)
        width, height = size
        self._noise = [noise.normal(0, NOISE_SIGMA, (height, width, 1)).astype(np.float32) for _ in range(4)]
        self._background = background(width, height)

    def frames(self, scene: MotionScene, fps: float, clock_start: datetime) -> Iterator[tuple[Frame, list[TruthFace]]]:
        for index in range(int(scene.seconds * fps)):
            now = index / fps
            image, truth = self.render(scene, now, index)
            yield Frame(index, clock_start + timedelta(seconds=now), image, f"{scene.name} frame {index}"), truth

    def render(self, scene: MotionScene, now: float, index: int = 0) -> tuple[Image, list[TruthFace]]:
        width, height = self.size
        canvas = self._background.copy()
        placed: list[tuple[TruthFace, Box]] = []
        for stand in scene.stands:
            if stand.start <= now <= stand.end:
                box = paste_face(canvas, self._portraits(stand.photo), stand.x * width, stand.y * height,
                                 stand.face_px, 0.0)  # fmt: skip
                placed.append((TruthFace(stand.person, None, box, 1.0), box))
        for number, walk in enumerate(scene.walks):
            position = walk_position(walk, now, width, height)
            if position is None:
                continue
            blur = walk_speed(walk, width) * EXPOSURE_SECONDS if walk.blur else 0.0
            box = paste_face(canvas, self._portraits(walk.photo), *position, blur)
            placed.append((TruthFace(walk.person, number, box, 1.0), box))
        pillars = [Box(p.x0 * width, 0, (p.x1 - p.x0) * width, height) for p in scene.pillars]
        for pillar in pillars:
            x0, x1 = int(pillar.x), int(pillar.x + pillar.width)
            canvas[:, x0:x1] = (70, 75, 80)
        lit = canvas.astype(np.float32) * scene.lighting.gain_at(now)
        if scene.lighting.dark_left_fraction > 0:
            lit[:, : int(scene.lighting.dark_left_fraction * width)] *= scene.lighting.dark_gain
        lit += self._noise[index % len(self._noise)]
        truth = [
            TruthFace(face.person, face.walk, box, visible_fraction(box, width, height, covers))
            for i, (face, box) in enumerate(placed)
            if (covers := [later for _, later in placed[i + 1 :]] + pillars) is not None
        ]
        return np.clip(lit, 0, 255).astype(np.uint8), truth


def event_box(event: FaceDetected) -> Box:
    """The box of a published event, as the edge's detector gave it."""
    return Box(event.box.x, event.box.y, event.box.width, event.box.height)


def whose_face(box: Box, truth: list[TruthFace], min_iou: float = 0.3) -> TruthFace | None:
    """The truth face a detected box shows (the best-overlapping one), or None for a false detection."""
    best = max(truth, key=lambda face: iou(box, face.box), default=None)
    return best if best is not None and iou(box, best.box) >= min_iou else None


def random_scenes(count: int, seed: int = 6) -> list[MotionScene]:
    """`count` entrance clips: 1-3 visitors each, crossing in 1.5-3 s, faces 50-200 px, neighbours overlapping,
    blur, lighting steps and a dark side, opposite directions, a pillar now and then, staff in 70% of them."""
    rng = random.Random(seed)  # noqa: S311 - reproducible scenes, not secrets
    visits: dict[str, int] = {}
    scenes = []
    for number in range(count):
        walks = []
        enter = 0.3
        for _ in range(rng.choice((1, 2, 2, 3, 3))):
            person = rng.choice(sorted(VISITOR_PHOTOS))
            photos = VISITOR_PHOTOS[person]
            photo = photos[visits.get(person, 0) % len(photos)]
            visits[person] = visits.get(person, 0) + 1
            first = rng.uniform(55, 170)
            walks.append(
                Walk(
                    person,
                    photo,
                    enter=enter,
                    crossing_seconds=rng.uniform(1.5, 3.0),
                    leftwards=rng.random() < 0.4,
                    y=rng.uniform(0.3, 0.6),
                    face_px=(first, min(first * rng.uniform(0.9, 1.3), 200.0)),
                    blur=rng.random() < 0.5,
                )
            )
            enter += rng.uniform(0.4, 2.0)
        seconds = max(w.enter + w.crossing_seconds for w in walks) + 1.0
        stands: tuple[Stand, ...] = ()
        if rng.random() < 0.7:
            stands = (
                Stand(STAFF_PERSON, STAFF_SCENE_PHOTO, rng.uniform(0.15, 0.85), 0.8, rng.uniform(70, 110), 0, seconds),
            )
        lighting = Lighting(
            gain=rng.uniform(0.55, 1.2),
            step_at=rng.uniform(1.0, seconds - 1.0) if rng.random() < 0.4 else None,
            gain_after=rng.uniform(0.55, 1.2),
            dark_left_fraction=0.35 if rng.random() < 0.3 else 0.0,
            dark_gain=0.6,
        )
        pillars = (Pillar(0.55, 0.6),) if rng.random() < 0.2 else ()
        scenes.append(MotionScene(f"entrance-{number:02d}", seconds, tuple(walks), stands, pillars, lighting))
    return scenes


def hard_scenes() -> list[MotionScene]:
    """Scenes made to break a tracker: each is named for what it does."""
    return [
        MotionScene("fast-crossing-2s", 3.0, (Walk("obama", "obama/obama_1.jpg", 0.2, 2.0, face_px=(100, 100)),)),
        MotionScene(
            "small-fast-face",
            2.6,
            (Walk("biden", "biden/biden_1.jpg", 0.2, 1.5, face_px=(50, 55), blur=True),),
        ),
        MotionScene(
            "passing-each-other",
            4.0,
            (
                Walk("kit_harington", "kit_harington/kit_harington_1.jpg", 0.3, 2.5, y=0.42, face_px=(110, 110)),
                Walk(
                    "eric_clapton",
                    "eric_clapton/eric_clapton_1.jpg",
                    0.3,
                    2.5,
                    leftwards=True,
                    y=0.45,
                    face_px=(105, 105),
                ),
            ),
        ),
        MotionScene(
            "head-on-crossing",  # entrance clip 33 of seed 6: the tracker gives one frame of one face to the other
            4.7,
            (
                Walk(
                    "eric_clapton", "eric_clapton/eric_clapton_1.jpg", 0.3, 1.99, y=0.41, face_px=(128, 131), blur=True
                ),
                Walk(
                    "kit_harington",
                    "kit_harington/kit_harington_1.jpg",
                    1.72,
                    2.02,
                    leftwards=True,
                    y=0.42,
                    face_px=(107, 130),
                    blur=True,
                ),
            ),
            lighting=Lighting(gain=1.19, gain_after=1.15, dark_left_fraction=0.35, dark_gain=0.6),
        ),
        MotionScene(
            "behind-a-pillar",
            4.0,
            (Walk("john_lennon", "john_lennon/john_lennon_1.jpg", 0.2, 3.0, face_px=(90, 90)),),
            pillars=(Pillar(0.42, 0.58),),
        ),
        MotionScene(
            "close-file",
            4.5,
            (
                Walk("alex_lacamoire", "alex_lacamoire/alex_lacamoire_1.jpg", 0.2, 2.5, y=0.4, face_px=(90, 90)),
                Walk("amy_adams", "amy_adams/amy_adams_1.jpg", 0.7, 2.5, y=0.42, face_px=(95, 95)),
                Walk("tom_hanks", "tom_hanks/tom_hanks_1.png", 1.2, 2.5, y=0.4, face_px=(90, 90)),
            ),
        ),
        MotionScene(
            "light-switch",
            4.0,
            (Walk("steve_carell", "steve_carell/steve_carell_1.jpg", 0.2, 2.5, face_px=(80, 120), blur=True),),
            lighting=Lighting(gain=0.5, step_at=1.4, gain_after=1.25, dark_left_fraction=0.3, dark_gain=0.6),
        ),
    ]
