"""Ingest's subscribers: faces.detected.> from edges (and from its own HTTP endpoint), and the crops erasure
requests of identity's erasure saga."""

from datetime import UTC, datetime

import structlog
from faststream.nats import NatsBroker

from schemas import (
    AuditEntryRecorded,
    CropsErasureRequested,
    FaceDetected,
    FaceIngested,
    FaceRejected,
    OperationStepCompleted,
    subjects,
)
from services.common.batch_consumer import BatchConsumer, Decoded, GuardPolicy, batch_subscriber
from services.common.bus import EventPublisher, InvalidMessageHandler, document_publication, durable_pull
from services.ingest import handlers
from services.ingest.adapters.s3 import CropStore
from services.ingest.config import IngestSettings
from services.ingest.domain.registry import Registry

DURABLE = "ingest"
DURABLE_CROPS_ERASURE = "ingest-crops-erasure"
CROPS_ERASURE_REQUESTED_ALL = subjects.identity_event("crops_erasure_requested", "*")


def register_consumers(
    broker: NatsBroker,
    settings: IngestSettings,
    registry: Registry,
    crops: CropStore,
    publish: EventPublisher,
    on_invalid: InvalidMessageHandler | None = None,
) -> list[BatchConsumer[FaceDetected]]:
    """Register the FastStream subscribers on `broker`; return the batch consumers, which the bootstrap starts.
    `on_invalid`: where refused detections go (bootstrap's `refuse`: `FaceRejected`)."""

    def check(item: Decoded[FaceDetected]) -> None:
        handlers.validate_detected(item.event, item.raw.subject, settings, registry, datetime.now(UTC))

    async def on_face_detected(batch: list[Decoded[FaceDetected]]) -> None:
        await handlers.ingest_faces([item.event for item in batch], crops, publish)

    detected = batch_subscriber(
        subjects.FACES_DETECTED_STREAM,
        DURABLE,
        subjects.FACES_DETECTED_ALL,
        FaceDetected,
        on_face_detected,
        GuardPolicy(handlers.SERVICE, settings.max_deliveries, lambda: broker, on_invalid),
        title="ingest:faces.detected",
        description="Validate, store the crop, republish (in batches).",
        batch_size=settings.consumer_workers,
        check=check,
    )

    erasure = durable_pull(
        subjects.IDENTITY_STREAM, DURABLE_CROPS_ERASURE, CROPS_ERASURE_REQUESTED_ALL, settings.max_deliveries
    )

    @broker.subscriber(
        **erasure, title="ingest:identity.crops_erasure_requested", description="Erase crops, complete the step."
    )
    async def on_crops_erasure_requested(request: CropsErasureRequested) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=request.tenant_id, event_id=str(request.event_id)):
            await handlers.erase_crops(request, crops, publish)

    document_publication(broker, "faces.ingested.{tenant}.{site}", FaceIngested, "Accepted faces, crop stored.")
    document_publication(broker, "faces.rejected.{tenant}", FaceRejected, "Refused events with the reason.")
    document_publication(
        broker, "operations.ingest.{tenant}", OperationStepCompleted, "A batch of an erasure's crops is deleted."
    )
    document_publication(
        broker, "audit.ingest.crops_erased.{tenant}", AuditEntryRecorded, "Crops erased: person, batch, count."
    )
    return [detected]
