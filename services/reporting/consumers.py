"""Reporting's subscribers: matched faces become visits; unidentified sightings are counted."""

import structlog
from faststream.nats import NatsBroker

from schemas import FaceMatched, FaceUnidentified, VisitRecord, subjects
from services.common.bus import EventPublisher, document_publication, durable_pull
from services.reporting import handlers
from services.reporting.adapters.postgres import VisitStore
from services.reporting.config import ReportingSettings
from services.reporting.domain.visits import VisitRules

DURABLE = "reporting"
DURABLE_UNIDENTIFIED = "reporting-unidentified"


def register_consumers(
    broker: NatsBroker, settings: ReportingSettings, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> None:
    options = durable_pull(subjects.FACES_STREAM, DURABLE, subjects.FACES_MATCHED_ALL, settings.max_deliveries)

    @broker.subscriber(**options, max_workers=8, title="reporting:faces.matched", description="Sessionize visits.")
    async def on_face_matched(event: FaceMatched) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, event_id=str(event.event_id)):
            await handlers.record_visit(event, store, rules, publish)

    unidentified = durable_pull(
        subjects.FACES_STREAM, DURABLE_UNIDENTIFIED, subjects.FACES_UNIDENTIFIED_ALL, settings.max_deliveries
    )

    @broker.subscriber(
        **unidentified,
        max_workers=8,
        title="reporting:faces.unidentified",
        description="Count unidentified sightings.",
    )
    async def on_face_unidentified(event: FaceUnidentified) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, event_id=str(event.event_id)):
            await handlers.record_unidentified_sighting(event, store)

    document_publication(broker, "visits.{tenant}.{site}", VisitRecord, "A visit opened or changed.")
