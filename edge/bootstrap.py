"""Builds the edge from its settings: the only place models, sources, outbox and NATS are opened.

Order matters for operators: models and sources are checked before NATS is dialled, so a wrong path
fails in a second with its own message instead of after the NATS timeout.
"""

import asyncio
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import ThreadingHTTPServer

from edge.config import Camera, EdgeSettings
from edge.detector import Detector, DetectorKind, OrtYuNetDetector, ScrfdDetector, YuNetDetector
from edge.embedder import OnnxEmbedder
from edge.metrics import serve_metrics
from edge.models import SCRFD, YUNET, ResolvedModel, embedder_spec, resolve_model
from edge.outbox import Outbox, OutboxLimits
from edge.pipeline import CameraPipeline, run_camera
from edge.progress import Progress, report_progress
from edge.publisher import JetStreamPublisher, connect_publisher
from edge.relay import OutboxRelay
from edge.sources import Frame, SourceKind, StreamOptions, open_source, source_kind
from edge.staff import StaffGallery, StaffGalleryWatcher, watch_staff_gallery
from plumbing.logging import get_logger

log = get_logger(__name__)

EXIT_OK = 0
EXIT_NOT_DELIVERED = 1
EXIT_INTERRUPTED = 130
"""Ctrl-C (or SIGTERM) before a file source's end: not a full run, whatever was delivered (128 + SIGINT)."""


@dataclass
class CameraRun:
    pipeline: CameraPipeline
    frames: Iterator[Frame]
    kind: SourceKind
    stopping: threading.Event
    camera_id: str = ""
    source: str = ""


@dataclass
class Edge:
    settings: EdgeSettings
    runs: list[CameraRun]
    outbox: Outbox
    publisher: JetStreamPublisher
    relay: OutboxRelay
    staff_watchers: list[StaffGalleryWatcher] = field(default_factory=list)
    metrics_server: ThreadingHTTPServer | None = None
    progress: Progress = field(init=False)
    interrupted: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.progress = Progress([run.pipeline for run in self.runs], self.relay, self.outbox)

    async def run(self) -> int:
        """Run every camera to its end (live streams never end), then wait for the outbox to drain."""
        relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
        progress_task = asyncio.create_task(report_progress(self.progress, sys.stderr), name="progress")
        watches = [asyncio.create_task(watcher.run(), name="staff-gallery") for watcher in self.staff_watchers]
        cameras = asyncio.create_task(self._run_cameras(), name="cameras")
        try:
            done, _ = await asyncio.wait({relay_task, cameras, *watches}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {cameras}:
                task.result()  # the relay and the watches only end by raising: surface it
            await cameras
            remaining = await self.relay.drain(self.settings.drain_timeout_seconds)
        finally:
            for task in (relay_task, progress_task, cameras, *watches):
                task.cancel()
        print(self.progress.line("interrupted" if self.interrupted else "done"), file=sys.stderr)
        cut_short = self.cut_short_files()
        for line in cut_short:
            print(line, file=sys.stderr)
        if remaining:
            log.error("outbox_not_drained", remaining=remaining, outbox=str(self.settings.outbox_path))
            print(
                f"{remaining} events still in the outbox {self.settings.outbox_path}; sent at next start",
                file=sys.stderr,
            )
            return EXIT_NOT_DELIVERED
        return EXIT_INTERRUPTED if cut_short else EXIT_OK

    def cut_short_files(self) -> list[str]:
        """One line per file source a stop signal cut short: how far it got. A live stream has no end, so a signal
        is how it stops normally; a file has one, and a run stopped before it is not a full run."""
        if not self.interrupted:
            return []
        return [
            f"interrupted: camera {run.camera_id} stopped after {run.pipeline.counters.frames} frames of {run.source} "
            f"(last: {run.pipeline.counters.last_frame or 'none'}); its events so far are delivered or in the outbox. "
            "A new run starts the source from its first frame and publishes those frames' faces again as new events"
            for run in self.runs
            if run.kind is not SourceKind.STREAM
        ]

    async def _run_cameras(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop_cameras() -> None:
            self.interrupted = True
            stop.set()
            for run in self.runs:
                run.stopping.set()  # ends a live stream's reconnect wait in its frame thread

        for signal_number in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: open tracks are still published
            loop.add_signal_handler(signal_number, stop_cameras)
        try:
            await asyncio.gather(*(run_camera(run.pipeline, run.frames, self.relay, stop) for run in self.runs))
        finally:
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signal_number)

    def health(self) -> dict[str, object]:
        return {
            "ok": True,
            "nats_connected": self.publisher.connected,
            "outbox_depth": self.outbox.depth,
            "outbox_dead": self.outbox.dead_count,
            "last_publish_error": self.relay.last_error,
        }

    async def close(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        for watcher in self.staff_watchers:
            await watcher.stop()
        await self.publisher.close()
        self.outbox.close()


def load_embedder(settings: EdgeSettings) -> OnnxEmbedder:
    model = resolve_model(settings.model_dir, embedder_spec(settings.embedder))
    return OnnxEmbedder(model, settings.intra_op_threads, settings.embed_batch_size)


def resolve_detector_model(settings: EdgeSettings) -> ResolvedModel:
    return resolve_model(settings.model_dir, SCRFD if settings.detector is DetectorKind.SCRFD else YUNET)


def build_detector(settings: EdgeSettings, model: ResolvedModel) -> Detector:
    """A new detector of the configured kind (one per camera: OpenCV's mutates itself on every frame size)."""
    width, threshold = settings.detector_input_width, settings.detection_score_threshold
    if settings.detector is DetectorKind.YUNET:
        return YuNetDetector(model.path, width, threshold)
    if settings.detector is DetectorKind.YUNET_ORT:
        return OrtYuNetDetector(model.path, width, threshold, settings.intra_op_threads)
    return ScrfdDetector(model.path, width, threshold, settings.intra_op_threads)


def stream_options(settings: EdgeSettings, camera: Camera, stopping: threading.Event) -> StreamOptions:
    return StreamOptions(
        stopping=stopping,
        camera_id=camera.camera_id,
        fps=camera.fps,
        reconnect_max_seconds=settings.stream_reconnect_max_seconds,
        frozen_seconds=settings.stream_frozen_seconds,
        black_seconds=settings.stream_black_seconds,
        black_luma=settings.stream_black_luma,
    )


def build_runs(
    settings: EdgeSettings,
    cameras: list[Camera],
    detector_model: ResolvedModel,
    embedder: OnnxEmbedder,
    clock_start: datetime,
) -> list[CameraRun]:
    """One pipeline per camera, each with its own detector (OpenCV's detector is not shareable by threads)."""
    runs, stopping = [], threading.Event()
    for camera in cameras:
        kind = source_kind(camera.source)
        pipeline = CameraPipeline(
            camera, settings, build_detector(settings, detector_model), embedder, tracking=kind is not SourceKind.IMAGES
        )
        frames = open_source(
            camera.source, clock_start, settings.frame_interval_seconds, stream_options(settings, camera, stopping)
        )
        runs.append(CameraRun(pipeline, frames, kind, stopping, camera.camera_id, camera.source))
    return runs


async def bootstrap(settings: EdgeSettings, cameras: list[Camera], clock_start: datetime) -> Edge:
    """Everything the edge needs, or a typed error (ModelPackError, SourceError, DependencyUnavailable)."""
    detector_model = resolve_detector_model(settings)
    embedder = load_embedder(settings)
    runs = build_runs(settings, cameras, detector_model, embedder, clock_start)
    publisher = await connect_publisher(
        settings.nats_url, settings.nats_credentials, settings.startup_timeout_seconds, settings.publish_timeout_seconds
    )
    limits = OutboxLimits(settings.outbox_max_events, settings.outbox_max_bytes, settings.outbox_max_age_seconds)
    watchers = [
        await watch_staff_gallery(publisher.connection, tenant, settings.startup_timeout_seconds)
        for tenant in sorted({camera.tenant_id for camera in cameras})
    ]
    galleries: dict[str, StaffGallery] = {watcher.gallery.tenant_id: watcher.gallery for watcher in watchers}
    for run in runs:
        run.pipeline.use_staff_gallery(galleries[run.pipeline.camera.tenant_id])
        run.pipeline.limit_payload(publisher.max_payload)
    outbox = Outbox(settings.outbox_path, limits)
    edge = Edge(settings, runs, outbox, publisher, OutboxRelay(outbox, publisher), watchers)
    if settings.metrics_port:
        edge.metrics_server = serve_metrics("0.0.0.0", settings.metrics_port, edge.health)
    log.info(
        "edge_started",
        cameras=[camera.camera_id for camera in cameras],
        detector=f"{settings.detector.value} ({detector_model.model_id})",
        embedding_model=embedder.model_id,
        outbox_depth=outbox.depth,
        max_payload=min(settings.max_payload_bytes, publisher.max_payload),
        staff={tenant: len(gallery) for tenant, gallery in galleries.items()},
        metrics_port=settings.metrics_port,
    )
    return edge
