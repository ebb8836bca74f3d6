"""Builds ingest's adapters from settings; the only place they are constructed."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from schemas import subjects
from services.common.batch_consumer import running_consumers, stop_at_shutdown
from services.common.bus import EventPublisher, connect_broker, event_publisher, publish_dead_letter
from services.common.http import create_app, nats_ready
from services.common.startup import wait_for_dependency
from services.ingest import handlers
from services.ingest.adapters.registry import open_registry
from services.ingest.adapters.s3 import CropStore
from services.ingest.api import router
from services.ingest.config import IngestSettings
from services.ingest.consumers import register_consumers
from services.ingest.domain.registry import Registry

SERVICE = handlers.SERVICE
STREAMS = (
    subjects.FACES_DETECTED_STREAM,
    subjects.FACES_STREAM,
    subjects.IDENTITY_STREAM,
    subjects.OPERATIONS_STREAM,
    subjects.AUDIT_STREAM,
    subjects.DEADLETTER_STREAM,
)


RETENTION_STREAMS = (subjects.AUDIT_STREAM,)


@dataclass
class Ingest:
    settings: IngestSettings
    broker: NatsBroker
    crops: CropStore
    registry: Registry
    app: FastAPI


async def refuse(broker: NatsBroker, raw: Msg, reason: str) -> None:
    """Invalid detections go back to operators as FaceRejected; any other invalid message (an erasure request
    naming another tenant's crops) to the dead-letter subject with the reason."""
    if subjects.subject_matches(subjects.FACES_DETECTED_ALL, raw.subject):
        await handlers.reject_face(raw, reason, event_publisher(broker, SERVICE))
    else:
        await publish_dead_letter(broker, SERVICE, raw, reason)


@asynccontextmanager
async def bootstrap(settings: IngestSettings) -> AsyncIterator[Ingest]:
    """Connect to NATS and S3 (waiting a bounded time), declare streams and the bucket, wire the consumers."""

    broker = await connect_broker(settings, SERVICE, STREAMS, refuse)
    crops = CropStore(
        settings.s3_endpoint_url,
        settings.s3_bucket,
        settings.s3_region,
        settings.s3_access_key,
        settings.s3_secret_key,
        connections=settings.consumer_workers,
    )
    try:
        async with crops:
            await wait_for_dependency(
                "S3",
                crops.ensure_bucket,
                settings.startup_timeout_seconds,
                hint=f"Check REVISIT_S3_ENDPOINT_URL ({settings.s3_endpoint_url}) and the access keys.",
            )
            publish = event_publisher(broker, SERVICE)
            registry, mirror = await open_registry(broker.connection, settings.nats_stream_replicas)
            consumers = register_consumers(broker, settings, registry, crops, publish, refuse)
            app = create_app(SERVICE, {"nats": nats_ready(broker), "s3": crops.ensure_bucket}, settings, (router,))
            app.state.settings, app.state.publish, app.state.registry = settings, publish, registry
            stop_at_shutdown(app, consumers)
            try:
                async with running_consumers(broker.connection, consumers):
                    yield Ingest(settings, broker, crops, registry, app)
            finally:
                await mirror.stop()
    finally:
        await broker.stop()


@dataclass
class IngestRetention:
    """What ingest's retention job needs, and nothing else: no consumers, no HTTP server."""

    settings: IngestSettings
    broker: NatsBroker
    crops: CropStore
    publish: EventPublisher


@asynccontextmanager
async def bootstrap_retention(settings: IngestSettings) -> AsyncIterator[IngestRetention]:
    """NATS (policies, the run lease, audit) and the crops bucket, each waited for a bounded time."""
    broker = await connect_broker(settings, SERVICE, RETENTION_STREAMS)
    crops = CropStore(
        settings.s3_endpoint_url, settings.s3_bucket, settings.s3_region, settings.s3_access_key, settings.s3_secret_key
    )
    try:
        async with crops:
            await wait_for_dependency(
                "S3",
                crops.ensure_bucket,
                settings.startup_timeout_seconds,
                hint=f"Check REVISIT_S3_ENDPOINT_URL ({settings.s3_endpoint_url}) and the access keys.",
            )
            yield IngestRetention(settings, broker, crops, event_publisher(broker, SERVICE))
    finally:
        await broker.stop()
