"""Edge settings (environment, CLI) and the YAML file of cameras a store configures."""

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.detector import DetectorKind
from edge.models import MODEL_PACK_HINT
from edge.tracker import TrackerTuning
from schemas.base import TOKEN_PATTERN

Token = Annotated[str, Field(pattern=TOKEN_PATTERN)]


class ConfigError(ValueError):
    """The edge is misconfigured; the message says what to set."""


class EdgeSettings(BaseSettings):
    """Read from `REVISIT_EDGE_*` variables (and `REVISIT_NATS_URL`, `REVISIT_NATS_CREDENTIALS`); CLI flags are
    passed as init values."""

    model_config = SettingsConfigDict(env_prefix="REVISIT_EDGE_", extra="ignore")

    nats_url: str = Field(validation_alias=AliasChoices("nats_url", "REVISIT_EDGE_NATS_URL", "REVISIT_NATS_URL"))
    nats_credentials: Path | None = Field(
        None,
        validation_alias=AliasChoices("nats_credentials", "REVISIT_EDGE_NATS_CREDENTIALS", "REVISIT_NATS_CREDENTIALS"),
        description="The box's device user (.creds file from identity's device registry): publishes only its "
        "cameras' detections and reads only its tenant's staff gallery. Needed when NATS runs with JWT auth",
    )
    model_dir: Path = Field(description="Folder of the model pack: YuNet detector and an embedder")
    embedder: str = Field("mobilefacenet_arcface_128", description="Embedder of the model registry (edge/models.py)")
    tenant_id: Token | None = Field(None, description="Tenant of the cameras (or in the cameras YAML)")
    site_id: Token | None = Field(None, description="Site of the cameras (or in the cameras YAML)")
    camera_id: Token | None = Field(None, description="Camera id of a single --source")

    detector: DetectorKind = Field(
        DetectorKind.YUNET_ORT,
        description="yunet_ort (same faces as yunet, faster), yunet (through OpenCV) or scrfd (needs its file)",
    )
    detector_input_width: int = Field(640, ge=64, description="Frames are downscaled to this width to detect")
    min_face_px: int = Field(32, ge=8, description="Smallest face (short side of the box, full-frame px) kept")
    detection_score_threshold: float = Field(
        0.7, ge=0, le=1, description="Detector score under which a face is ignored"
    )
    min_quality: float = Field(0.0, ge=0, le=1, description="Faces below this quality are not published")
    crop_margin: float = Field(0.2, ge=0, le=1, description="Margin added around the box of the JPEG crop")
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of the crops events carry")
    send_crops: bool = Field(True, description="False is privacy mode: events carry the embedding, no crop")
    max_crop_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="Larger crops are re-encoded at a lower JPEG quality, then made smaller, to fit: ingest refuses "
        "crops over its REVISIT_MAX_CROP_BYTES (the same default)",
    )
    max_payload_bytes: int = Field(
        1024 * 1024,
        ge=16 * 1024,
        description="Largest event published, headers included (the NATS default max_payload); the server's own "
        "max_payload wins when smaller. Crops are made smaller so that every event fits",
    )
    staff_threshold: float = Field(
        0.45,
        ge=-1,
        le=1,
        description="A face at least this cosine-similar to a staff vector is not published. Measured on the "
        "shared photos with the test embedder: same person >= 0.51, different people <= 0.26 (docs/BENCHMARKS.md); "
        "above the matcher's 0.40 because a face dropped here is lost for good",
    )

    fps: float = Field(5.0, gt=0, description="Frames per second sampled from video files and streams")
    frame_interval_seconds: float = Field(1.0, gt=0, description="Simulated time between images of a folder")
    stream_reconnect_max_seconds: float = Field(30.0, gt=0, description="Longest wait between reconnections")
    stream_frozen_seconds: float = Field(10.0, gt=0, description="Same picture this long: the stream is frozen")
    stream_black_seconds: float = Field(10.0, gt=0, description="Dark this long: the stream is black")
    stream_black_luma: float = Field(16.0, ge=0, le=255, description="Mean luminance (0-255) under which it is dark")
    track_timeout_seconds: float = Field(
        TrackerTuning.timeout_seconds, gt=0, description="A track unseen this long has ended; its best crop is sent"
    )
    track_max_speed_face_widths: float = Field(
        TrackerTuning.max_speed_face_widths,
        gt=0,
        description="Fastest face motion followed, in face widths per second (crossing 1280 px in 1.5 s with a "
        "50 px face is 17); raise it, or the fps, for faster or smaller faces",
    )
    track_motion_gate_face_widths: float = Field(
        TrackerTuning.motion_gate_face_widths,
        gt=0,
        description="How far from its predicted position, in face widths, a moving track may continue",
    )
    track_min_appearance: float = Field(
        TrackerTuning.min_appearance,
        ge=-1,
        le=1,
        description="Embedding similarity under which two faces are never one track (where motion cannot decide)",
    )
    track_emit_interval_seconds: float = Field(10.0, ge=0, description="Also emit long tracks this often; 0: never")
    track_pooled_faces: int = Field(
        3, ge=1, description="A track's event embedding is pooled from its this many best faces; 1: the best alone"
    )
    embed_batch_size: int = Field(8, ge=1, description="Faces per embedder call (per-face cost is flat: BENCHMARKS)")
    intra_op_threads: int = Field(1, ge=1, description="onnxruntime threads per model: 1 leaves cores to cameras")

    outbox_path: Path = Field(Path(".data/edge/outbox.db"), description="SQLite file of events not yet acknowledged")
    outbox_max_events: int = Field(100_000, ge=1, description="Beyond this many waiting events the oldest are dropped")
    outbox_max_bytes: int = Field(512 * 1024 * 1024, ge=1024, description="Beyond this size the oldest are dropped")
    outbox_max_age_seconds: float = Field(7 * 86400, gt=0, description="Older events are dropped (stream max age)")

    metrics_port: int = Field(9400, ge=0, le=65535, description="HTTP /metrics and /healthz; 0 disables")
    startup_timeout_seconds: float = Field(10.0, gt=0, description="Wait for NATS at start, then exit 2")
    publish_timeout_seconds: float = Field(5.0, gt=0, description="Wait for a PubAck, then retry from the outbox")
    drain_timeout_seconds: float = Field(30.0, ge=0, description="How long a file source waits for the outbox")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")


class CameraConfig(BaseModel):
    """One camera of the YAML file; unset values come from the settings."""

    model_config = ConfigDict(extra="forbid")

    camera_id: Token
    site_id: Token | None = None
    source: str
    fps: float | None = Field(None, gt=0)
    min_face_px: int | None = Field(None, ge=8)


class CamerasFile(BaseModel):
    """`cameras.yaml`: an optional tenant and site shared by the cameras, and the cameras."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: Token | None = None
    site_id: Token | None = None
    cameras: list[CameraConfig] = Field(min_length=1)


def load_cameras_file(path: Path) -> CamerasFile:
    """Parse and validate a cameras YAML file; any problem is one ConfigError naming the file."""
    try:
        raw: Any = yaml.safe_load(path.read_text())
        return CamerasFile.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        detail = describe(error) if isinstance(error, ValidationError) else str(error)
        raise ConfigError(f"cannot use cameras file {path}: {detail}") from error


def load_settings(overrides: dict[str, Any]) -> EdgeSettings:
    """Settings from the environment, with the non-None `overrides` (CLI flags) on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return EdgeSettings(**given)
    except ValidationError as error:
        raise ConfigError(f"invalid edge settings: {describe(error)}") from error


def describe(error: ValidationError) -> str:
    """One line per pydantic error, naming the setting and, when missing, where it comes from."""
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        if item["type"] != "missing":
            problems.append(f"{name}: {item['msg']} (got {item.get('input')!r})")
        elif name == "model_dir":
            problems.append(f"model_dir is not set: {MODEL_PACK_HINT}")
        else:
            problems.append(f"{name} is not set (flag --{name.removesuffix('_id').replace('_', '-')} or env)")
    return "; ".join(problems)


class Camera(BaseModel):
    """A fully resolved camera: everything the pipeline of one source needs to know about where it is."""

    model_config = ConfigDict(frozen=True)

    tenant_id: Token
    site_id: Token
    camera_id: Token
    source: str
    fps: float
    min_face_px: int


def resolve_cameras(settings: EdgeSettings, cameras_file: CamerasFile | None, flags: dict[str, Any]) -> list[Camera]:
    """The cameras to run: from the YAML file if given, else one camera from flags and settings.

    Precedence is CLI flag > YAML > environment. Flags that name one source (`source`, `camera_id`,
    `site_id`, `fps`) only make sense when the file has a single camera.
    """
    given = {key: value for key, value in flags.items() if value is not None}
    entries = cameras_file.cameras if cameras_file else [None]
    if len(entries) > 1 and given.keys() & {"source", "camera_id", "site_id", "fps"}:
        raise ConfigError("--source/--camera/--site/--fps apply to one camera; the cameras file lists several")
    tenant = given.get("tenant_id") or (cameras_file and cameras_file.tenant_id) or settings.tenant_id
    return [_resolve_one(settings, cameras_file, entry, given, tenant) for entry in entries]


def _resolve_one(
    settings: EdgeSettings,
    cameras_file: CamerasFile | None,
    entry: CameraConfig | None,
    given: dict[str, Any],
    tenant: str | None,
) -> Camera:
    site = given.get("site_id") or (entry and entry.site_id) or (cameras_file and cameras_file.site_id)
    values = {
        "tenant_id": tenant,
        "site_id": site or settings.site_id,
        "camera_id": given.get("camera_id") or (entry and entry.camera_id) or settings.camera_id,
        "source": given.get("source") or (entry and entry.source),
        "fps": given.get("fps") or (entry and entry.fps) or settings.fps,
        "min_face_px": (entry and entry.min_face_px) or settings.min_face_px,
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigError(f"camera needs {', '.join(missing)}: give --tenant/--site/--camera/--source or --config")
    try:
        return Camera.model_validate(values)
    except ValidationError as error:
        raise ConfigError(f"invalid camera {values['camera_id']}: {describe(error)}") from error
