"""Settings and cameras: precedence CLI > YAML > environment, and clear errors."""

from pathlib import Path

import pytest

from edge.config import ConfigError, load_cameras_file, load_settings, resolve_cameras
from edge.models import MODEL_PACK_HINT

NO_CAMERA_FLAGS = {"source": None, "tenant_id": None, "site_id": None, "camera_id": None, "fps": None}


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("REVISIT_NATS_URL", "REVISIT_EDGE_MODEL_DIR", "REVISIT_EDGE_TENANT_ID", "REVISIT_EDGE_SITE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REVISIT_NATS_URL", "nats://nats:4222")
    monkeypatch.setenv("REVISIT_EDGE_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("REVISIT_EDGE_TENANT_ID", "acme")
    monkeypatch.setenv("REVISIT_EDGE_SITE_ID", "env-site")
    return tmp_path


def test_settings_come_from_the_environment_and_flags_override(env):
    settings = load_settings({"fps": 2.0, "send_crops": None})
    assert settings.nats_url == "nats://nats:4222"
    assert settings.fps == 2.0 and settings.send_crops is True
    assert settings.detection_score_threshold == 0.7 and settings.detector_input_width == 640


def test_missing_model_dir_explains_where_to_get_models(monkeypatch):
    monkeypatch.delenv("REVISIT_EDGE_MODEL_DIR", raising=False)
    with pytest.raises(ConfigError) as error:
        load_settings({"nats_url": "nats://x:4222"})
    assert MODEL_PACK_HINT in str(error.value)


def test_single_camera_from_flags(env):
    settings = load_settings({})
    flags = {**NO_CAMERA_FLAGS, "source": "/videos/door.mp4", "camera_id": "door"}
    [camera] = resolve_cameras(settings, None, flags)
    assert (camera.tenant_id, camera.site_id, camera.camera_id) == ("acme", "env-site", "door")
    assert camera.fps == settings.fps and camera.min_face_px == settings.min_face_px


def test_yaml_overrides_environment_and_flags_override_yaml(env):
    path = env / "cameras.yaml"
    path.write_text(
        "site_id: paris-1\ncameras:\n  - {camera_id: door, source: rtsp://cam1/stream, fps: 3, min_face_px: 48}\n"
    )
    cameras_file = load_cameras_file(path)
    [from_yaml] = resolve_cameras(load_settings({}), cameras_file, NO_CAMERA_FLAGS)
    assert (from_yaml.site_id, from_yaml.fps, from_yaml.min_face_px) == ("paris-1", 3, 48)
    [overridden] = resolve_cameras(load_settings({}), cameras_file, {**NO_CAMERA_FLAGS, "source": "/tmp/x.mp4"})
    assert overridden.source == "/tmp/x.mp4" and overridden.camera_id == "door"


def test_source_flag_is_ambiguous_with_several_cameras(env):
    path = env / "cameras.yaml"
    path.write_text("cameras:\n  - {camera_id: a, source: rtsp://a}\n  - {camera_id: b, source: rtsp://b}\n")
    cameras_file = load_cameras_file(path)
    assert len(resolve_cameras(load_settings({}), cameras_file, NO_CAMERA_FLAGS)) == 2
    with pytest.raises(ConfigError, match="one camera"):
        resolve_cameras(load_settings({}), cameras_file, {**NO_CAMERA_FLAGS, "source": "x"})


def test_invalid_yaml_camera_names_the_file(env):
    path = env / "cameras.yaml"
    path.write_text("cameras:\n  - {camera_id: Bad Id, source: x}\n")
    with pytest.raises(ConfigError, match=r"cameras\.yaml"):
        load_cameras_file(path)


def test_camera_without_a_tenant_is_refused(env, monkeypatch):
    monkeypatch.delenv("REVISIT_EDGE_TENANT_ID")
    with pytest.raises(ConfigError, match="tenant_id"):
        resolve_cameras(load_settings({}), None, {**NO_CAMERA_FLAGS, "source": "x", "camera_id": "c"})


def test_the_example_cameras_file_is_valid(env):
    example = Path(__file__).resolve().parents[3] / "edge" / "cameras.example.yaml"
    cameras = resolve_cameras(load_settings({}), load_cameras_file(example), NO_CAMERA_FLAGS)
    assert [(camera.camera_id, camera.fps) for camera in cameras] == [("entrance", 5), ("checkout", 3)]
    assert {camera.tenant_id for camera in cameras} == {"acme"}
