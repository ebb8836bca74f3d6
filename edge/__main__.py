"""`python -m edge run ...` / `revisit-edge run ...`: the edge CLI (and `enrol-staff`).

Exit codes: 0 the sources ended and every event was acknowledged; 1 events are left in the outbox (they
are sent at the next start); 2 the edge cannot start (settings, model pack, source or NATS), one line why;
130 Ctrl-C or SIGTERM stopped a file source (image folder, video) before its end, with a line saying how far it
got (a live stream stopped so exits 0 or 1).
"""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.bootstrap import bootstrap, build_detector, load_embedder, resolve_detector_model
from edge.config import ConfigError, EdgeSettings, load_cameras_file, load_settings, resolve_cameras
from edge.enrol import (
    EnrolmentError,
    check_identity_reachable,
    check_ids,
    connect_once,
    embed_photos,
    enrol_through_identity,
    enrol_through_nats,
)
from edge.models import ModelPackError
from edge.sources import SourceError
from plumbing.logging import configure_logging
from plumbing.startup import DependencyUnavailable
from schemas.staff import StaffGalleryEntry, staff_entry

EXIT_CANNOT_START = 2
IDENTITY_TOKEN_ENV = "REVISIT_IDENTITY_TOKEN"


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
    run.add_argument("--nats-credentials", type=Path, help="the device's NATS .creds (REVISIT_EDGE_NATS_CREDENTIALS)")
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
    enrol.add_argument("--nats-url", help="NATS server (REVISIT_NATS_URL), written directly without --identity-url")
    enrol.add_argument("--nats-credentials", type=Path, help="a NATS user that may write the staff gallery")
    enrol.add_argument(
        "--identity-url",
        help=f"enrol through identity's REST API (checked, audited); admin JWT in {IDENTITY_TOKEN_ENV}",
    )
    enrol.add_argument("--detector", choices=["yunet_ort", "yunet", "scrfd"])
    return root


SETTING_FLAGS = (
    "model_dir", "embedder", "detector", "nats_url", "nats_credentials", "tenant_id", "site_id", "camera_id",
    "frame_interval_seconds", "fps", "min_face_px", "detection_score_threshold", "detector_input_width",
    "track_emit_interval_seconds", "send_crops", "outbox_path", "metrics_port", "drain_timeout_seconds", "log_level",
    "staff_threshold",
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
    """Embed the photos with the edge's own models and write the staff member's gallery entry.

    Everything that can be checked without the photos is checked first (ids, token, the NATS link), so a
    mistake costs a second, not a model load."""
    check_ids(args.tenant_id, args.staff_id)
    token = os.environ.get(IDENTITY_TOKEN_ENV, "")
    if args.identity_url and not token:
        raise EnrolmentError(f"--identity-url needs an admin token of tenant {args.tenant_id} in {IDENTITY_TOKEN_ENV}")
    flags = {
        name: getattr(args, name) for name in ("model_dir", "embedder", "nats_url", "nats_credentials", "detector")
    }
    if args.identity_url:
        flags["nats_url"] = args.nats_url or "unused:"  # the edge's settings require one; identity mode never dials it
    settings = load_settings(flags)
    timeout = settings.startup_timeout_seconds
    if args.identity_url:
        await check_identity_reachable(args.identity_url, timeout)
    connection = (
        None if args.identity_url else await connect_once(settings.nats_url, settings.nats_credentials, timeout)
    )
    try:
        entry = embed_entry(args, settings)
        if connection is None:
            revision = await enrol_through_identity(args.identity_url, token, entry, timeout)
        else:
            revision = await enrol_through_nats(connection, entry, timeout)
    finally:
        if connection is not None:
            await connection.close()
    print(f"enrolled {entry.tenant_id}.{entry.staff_id}: {len(entry.embeddings)} vectors of {entry.embedding_model}, "
          f"revision {revision}")  # fmt: skip
    return 0


def embed_entry(args: argparse.Namespace, settings: EdgeSettings) -> StaffGalleryEntry:
    """The staff member's entry, from their photos through this edge's detector and embedder."""
    detector = build_detector(settings, resolve_detector_model(settings))
    embedder = load_embedder(settings)
    vectors = embed_photos(detector, embedder, args.photo)
    return staff_entry(args.tenant_id, args.staff_id, embedder.model_id, vectors, args.display_name)


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
