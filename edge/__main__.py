"""`python -m edge run ...` / `revisit-edge run ...`: the edge CLI (and `enrol-staff`).

Exit codes: 0 the sources ended and every event was acknowledged; 1 events are left in the outbox (they
are sent at the next start); 2 the edge cannot start (settings, model pack, source or NATS), one line why.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats

from edge.bootstrap import bootstrap, build_detector, load_embedder, resolve_detector_model
from edge.config import ConfigError, load_cameras_file, load_settings, resolve_cameras
from edge.enrol import EnrolmentError, embed_photos, enrol_staff
from edge.models import ModelPackError
from edge.sources import SourceError
from services.common.logging import configure_logging
from services.common.startup import DependencyUnavailable

EXIT_CANNOT_START = 2


def iso_time(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="revisit-edge", description="Revisit edge: camera faces to FaceDetected.")
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="detect, track, embed and publish faces of one or more sources")
    run.add_argument("--source", help="image folder, video file or rtsp/http URL")
    run.add_argument("--config", type=Path, help="cameras YAML file (camera_id, site_id, source, fps, min_face_px)")
    run.add_argument("--tenant", dest="tenant_id")
    run.add_argument("--site", dest="site_id")
    run.add_argument("--camera", dest="camera_id")
    run.add_argument("--model-dir", type=Path, help="model pack folder (REVISIT_EDGE_MODEL_DIR)")
    run.add_argument("--embedder", help="embedder of the registry (default mobilefacenet_arcface_128)")
    run.add_argument("--nats-url", help="NATS server (REVISIT_NATS_URL)")
    run.add_argument("--clock-start", type=iso_time, help="ISO time of the first frame of a file source (default now)")
    run.add_argument("--frame-interval", type=float, dest="frame_interval_seconds", help="seconds between images")
    run.add_argument("--fps", type=float, help="frames per second sampled from video and streams")
    run.add_argument("--min-face-px", type=int, help="smallest face kept, short side in pixels")
    run.add_argument("--score-threshold", type=float, dest="detection_score_threshold")
    run.add_argument("--detector", choices=["yunet_ort", "yunet", "scrfd"], help="face detector (yunet_ort)")
    run.add_argument("--detector-width", type=int, dest="detector_input_width")
    run.add_argument(
        "--emit-interval",
        type=float,
        dest="track_emit_interval_seconds",
        help="also publish a track lasting longer than this many seconds; 0: only at its end",
    )
    run.add_argument(
        "--no-crops",
        action="store_const",
        const=False,
        dest="send_crops",
        help="privacy mode: events carry the embedding and no crop",
    )
    run.add_argument("--outbox", type=Path, dest="outbox_path")
    run.add_argument("--metrics-port", type=int, help="/metrics and /healthz port; 0 disables")
    run.add_argument("--drain-timeout", type=float, dest="drain_timeout_seconds")
    run.add_argument("--log-level")
    run.add_argument("--staff-threshold", type=float, help="cosine similarity at which a face is staff (0.45)")

    enrol = commands.add_parser("enrol-staff", help="embed a staff member's photos into the tenant's staff gallery")
    enrol.add_argument("--tenant", dest="tenant_id", required=True)
    enrol.add_argument("--staff-id", required=True, help="the store's id of the staff member (a token: a-z 0-9 _ -)")
    enrol.add_argument("--photo", type=Path, action="append", required=True, help="a photo of them; repeat for more")
    enrol.add_argument("--display-name")
    enrol.add_argument("--model-dir", type=Path, help="model pack folder (REVISIT_EDGE_MODEL_DIR)")
    enrol.add_argument("--embedder", help="embedder of the registry: the one the edges of the store use")
    enrol.add_argument("--nats-url", help="NATS server (REVISIT_NATS_URL)")
    enrol.add_argument("--detector", choices=["yunet_ort", "yunet", "scrfd"])
    return root


SETTING_FLAGS = (
    "model_dir", "embedder", "detector", "nats_url", "tenant_id", "site_id", "camera_id", "frame_interval_seconds",
    "fps", "min_face_px", "detection_score_threshold", "detector_input_width", "track_emit_interval_seconds",
    "send_crops", "outbox_path", "metrics_port", "drain_timeout_seconds", "log_level", "staff_threshold",
)  # fmt: skip
CAMERA_FLAGS = ("source", "tenant_id", "site_id", "camera_id", "fps")


async def run(args: argparse.Namespace) -> int:
    options: dict[str, Any] = vars(args)
    settings = load_settings({name: options[name] for name in SETTING_FLAGS})
    cameras_file = load_cameras_file(args.config) if args.config else None
    cameras = resolve_cameras(settings, cameras_file, {name: options[name] for name in CAMERA_FLAGS})
    configure_logging("edge", settings.log_level)
    edge = await bootstrap(settings, cameras, args.clock_start or datetime.now(UTC))
    try:
        return await edge.run()
    finally:
        await edge.close()


async def enrol(args: argparse.Namespace) -> int:
    """Embed the photos with the edge's own models and write the staff member's gallery entry."""
    flags = ("model_dir", "embedder", "nats_url", "detector")
    settings = load_settings({name: getattr(args, name) for name in flags})
    detector = build_detector(settings, resolve_detector_model(settings))
    embedder = load_embedder(settings)
    vectors = embed_photos(detector, embedder, args.photo)
    try:
        entry, revision = await enrol_staff(
            settings.nats_url,
            args.tenant_id,
            args.staff_id,
            vectors,
            embedder.model_id,
            args.display_name,
            settings.startup_timeout_seconds,
        )
    except (TimeoutError, OSError, nats.errors.Error) as error:
        raise DependencyUnavailable(f"cannot write the staff gallery at {settings.nats_url}: {error}") from error
    print(f"enrolled {entry.tenant_id}.{entry.staff_id}: {len(vectors)} vectors of {entry.embedding_model}, "
          f"revision {revision}")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    command = enrol if args.command == "enrol-staff" else run
    try:
        sys.exit(asyncio.run(command(args)))
    except (ConfigError, ModelPackError, SourceError, DependencyUnavailable, EnrolmentError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_CANNOT_START)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
