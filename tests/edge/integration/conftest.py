"""Real models and photos from `../shared` (the `shared` fixture of tests/conftest.py)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.bootstrap import build_detector, load_embedder, resolve_detector_model
from edge.config import Camera, EdgeSettings
from edge.embedder import OnnxEmbedder
from edge.pipeline import CameraPipeline

CLOCK_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def clock_start() -> datetime:
    return CLOCK_START


@pytest.fixture(scope="session")
def faces_dir(shared: Path) -> Path:
    return shared / "faces"


@pytest.fixture(scope="session")
def edge_settings(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> EdgeSettings:
    return EdgeSettings(
        nats_url="nats://unused:4222",
        model_dir=shared / "models",
        outbox_path=tmp_path_factory.mktemp("outbox") / "outbox.db",
        metrics_port=0,
    )


@pytest.fixture(scope="session")
def embedder(edge_settings) -> OnnxEmbedder:
    return load_embedder(edge_settings)


@pytest.fixture
def make_pipeline(edge_settings, embedder):
    """A camera pipeline on the real models; `tracking` as for video (True) or image folders (False)."""

    def make(tracking: bool, settings: EdgeSettings = edge_settings, source: str = "unused") -> CameraPipeline:
        camera = Camera(tenant_id="t-test", site_id="s-test", camera_id="cam", source=source, fps=5.0, min_face_px=32)
        detector = build_detector(settings, resolve_detector_model(settings))
        return CameraPipeline(camera, settings, detector, embedder, tracking=tracking)

    return make
