"""Ingest's subscriber: faces.detected.> from edges (and from its own HTTP endpoint)."""

import structlog
from faststream.nats import NatsBroker, NatsMessage

from schemas import FaceDetected, FaceIngested, FaceRejected, subjects
from services.common.bus import EventPublisher, document_publication, durable_pull
from services.ingest import handlers
from services.ingest.adapters.s3 import CropStore
from services.ingest.config import IngestSettings

DURABLE = "ingest"


def register_consumers(broker: NatsBroker, settings: IngestSettings, crops: CropStore, publish: EventPublisher) -> None:
    options = durable_pull(
        subjects.FACES_DETECTED_STREAM, DURABLE, subjects.FACES_DETECTED_ALL, settings.max_deliveries
    )

    @broker.subscriber(**options, title="ingest:faces.detected", description="Validate, store the crop, republish.")
    async def on_face_detected(event: FaceDetected, msg: NatsMessage) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, event_id=str(event.event_id)):
            await handlers.ingest_face(event, msg.raw_message.subject, settings, crops, publish)

    document_publication(broker, "faces.ingested.{tenant}.{site}", FaceIngested, "Accepted faces, crop stored.")
    document_publication(broker, "faces.rejected.{tenant}", FaceRejected, "Refused events with the reason.")
