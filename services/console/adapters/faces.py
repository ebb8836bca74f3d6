"""Staff photos to face vectors, with the edge's own detector, alignment and embedder (the model pack the edges
run), so an enrolled staff member's vectors compare with the faces the edges send. The vectors then go to
identity's `PUT /v1/staff/{id}` like any admin's; the photos are never stored."""

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edge.detector import YuNetDetector
from edge.embedder import OnnxEmbedder
from edge.enrol import EnrolmentError, embed_photos
from edge.models import EMBEDDERS, YUNET, ModelPackError, resolve_model
from services.common.startup import DependencyUnavailable

EMBEDDER = "mobilefacenet_arcface_128"
DETECTOR_INPUT_WIDTH, DETECTOR_SCORE = 640, 0.7  # the edge's defaults (edge/config.py)


class UnusablePhotos(ValueError):
    """The photos give no vectors (no face, not an image, too many); the message says which."""


@dataclass
class FaceEmbedder:
    detector_path: Path
    embedder: OnnxEmbedder
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    async def vectors(self, photos: list[tuple[str, bytes]]) -> list[list[float]]:
        """One vector per photo (its largest face), computed off the event loop, one request at a time."""
        async with self._lock:
            return await asyncio.to_thread(self._embed, photos)

    def _embed(self, photos: list[tuple[str, bytes]]) -> list[list[float]]:
        with tempfile.TemporaryDirectory(prefix="revisit-staff-") as folder:
            paths = []
            for index, (name, content) in enumerate(photos):
                path = Path(folder) / f"{index}{Path(name).suffix.lower() or '.jpg'}"
                path.write_bytes(content)
                paths.append(path)
            detector = YuNetDetector(self.detector_path, DETECTOR_INPUT_WIDTH, DETECTOR_SCORE)
            try:
                return embed_photos(detector, self.embedder, paths)
            except EnrolmentError as error:
                named = str(error)
                for (name, _), path in zip(photos, paths, strict=True):
                    named = named.replace(str(path), repr(name))
                raise UnusablePhotos(named) from error


def load_face_embedder(model_dir: Path) -> FaceEmbedder:
    """The detector and embedder of the pack in `model_dir`; a missing or altered pack stops the console."""
    try:
        detector = resolve_model(model_dir, YUNET)
        embedder = OnnxEmbedder(resolve_model(model_dir, EMBEDDERS[EMBEDDER]), intra_op_threads=1, max_batch=8)
    except ModelPackError as error:
        raise DependencyUnavailable(f"face models for staff enrolment (REVISIT_CONSOLE_MODEL_DIR): {error}") from error
    return FaceEmbedder(detector.path, embedder)
