"""Ingest's subscribers: faces.detected.> from edges (and from its own HTTP endpoint), and the crops erasure
requests of identity's erasure saga."""

import structlog
from faststream.nats import NatsBroker, NatsMessage

from schemas import (
    AuditEntryRecorded,
    CropsErasureRequested,
    FaceDetected,
    FaceIngested,
    FaceRejected,
    OperationStepCompleted,
    subjects,
)
from services.common.bus import EventPublisher, document_publication, durable_pull
from services.ingest import handlers
from services.ingest.adapters.s3 import CropStore
from services.ingest.config import IngestSettings
from services.ingest.domain.registry import Registry

DURABLE = "ingest"
DURABLE_CROPS_ERASURE = "ingest-crops-erasure"
CROPS_ERASURE_REQUESTED_ALL = subjects.identity_event("crops_erasure_requested", "*")


def register_consumers(
    broker: NatsBroker, settings: IngestSettings, registry: Registry, crops: CropStore, publish: EventPublisher
) -> None:
    options = durable_pull(
        subjects.FACES_DETECTED_STREAM,
        DURABLE,
        subjects.FACES_DETECTED_ALL,
        settings.max_deliveries,
        fetch_batch=settings.consumer_workers,
        workers=settings.consumer_workers,
    )

    @broker.subscriber(**options, title="ingest:faces.detected", description="Validate, store the crop, republish.")
    async def on_face_detected(event: FaceDetected, msg: NatsMessage) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, event_id=str(event.event_id)):
            await handlers.ingest_face(event, msg.raw_message.subject, settings, registry, crops, publish)

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
