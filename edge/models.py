"""The model pack: which files the edge knows, how to feed them, and their pinned checksums.

The id of the embedder travels in every event (`name@<first 8 hex of sha256>`) so that the matcher never
compares vectors of two different models.
"""

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

MODEL_PACK_HINT = (
    "set REVISIT_EDGE_MODEL_DIR to a folder with face_detection_yunet.onnx and an embedder, "
    "e.g. ../shared/models for tests, or run `make models` on a machine with internet"
)


class ModelPackError(RuntimeError):
    """A model file is missing or is not the file the registry pins."""


class ColourOrder(StrEnum):
    RGB = "rgb"
    BGR = "bgr"


@dataclass(frozen=True)
class ModelFile:
    """A file of the model pack; `sha256` None means the registry does not pin its content."""

    name: str
    file: str
    sha256: str | None


@dataclass(frozen=True)
class EmbedderSpec(ModelFile):
    """How to feed an embedder: pixels are converted to `colour`, then `(x - mean) / std`."""

    input_size: int
    mean: float
    std: float
    colour: ColourOrder
    dim: int


YUNET = ModelFile(
    "yunet", "face_detection_yunet.onnx", "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
)

SCRFD = ModelFile(
    "scrfd_2.5g_bnkps", "scrfd_2.5g_bnkps.onnx", "bc24bb349491481c3ca793cf89306723162c280cb284c5a5e49df3760bf5c2ce"
)
"""Optional (`detector = scrfd`); InsightFace's pretrained models are for non-commercial research use."""

EMBEDDERS: dict[str, EmbedderSpec] = {
    spec.name: spec
    for spec in (
        EmbedderSpec(
            "mobilefacenet_arcface_128",
            "mobilefacenet_arcface_128.onnx",
            "e72a5710cce378dc46472b6b845cb90647634f2738d8c3e581735cf195b9866f",
            input_size=112,
            mean=127.5,
            std=127.5,
            colour=ColourOrder.RGB,
            dim=128,
        ),
        EmbedderSpec(
            "arcface_r50_w600k_512",  # insightface buffalo_l recognition model
            "w600k_r50.onnx",
            None,
            input_size=112,
            mean=127.5,
            std=127.5,
            colour=ColourOrder.RGB,
            dim=512,
        ),
        EmbedderSpec(
            "sface",  # OpenCV zoo SFace: RGB, raw 0..255 pixels (FaceRecognizerSF uses scale 1, mean 0)
            "face_recognition_sface_2021dec.onnx",
            None,
            input_size=112,
            mean=0.0,
            std=1.0,
            colour=ColourOrder.RGB,
            dim=128,
        ),
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """A registry entry found on disk, with the checksum of the file actually there."""

    spec: ModelFile
    path: Path
    sha256: str

    @property
    def model_id(self) -> str:
        return f"{self.spec.name}@{self.sha256[:8]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(model_dir: Path, spec: ModelFile) -> ResolvedModel:
    """Find `spec` in `model_dir` and check its sha256 when pinned; raise ModelPackError otherwise."""
    if not model_dir.is_dir():
        raise ModelPackError(f"model directory {model_dir} does not exist: {MODEL_PACK_HINT}")
    path = model_dir / spec.file
    if not path.is_file():
        raise ModelPackError(f"model file {path} ({spec.name}) is missing: {MODEL_PACK_HINT}")
    actual = file_sha256(path)
    if spec.sha256 is not None and actual != spec.sha256:
        raise ModelPackError(
            f"model file {path} has sha256 {actual}, expected {spec.sha256} for {spec.name}: "
            f"the file is corrupt or a different model; {MODEL_PACK_HINT}"
        )
    return ResolvedModel(spec, path, actual)


def embedder_spec(name: str) -> EmbedderSpec:
    try:
        return EMBEDDERS[name]
    except KeyError:
        raise ModelPackError(f"unknown embedder {name!r}; known: {', '.join(sorted(EMBEDDERS))}") from None
