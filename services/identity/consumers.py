"""Identity's subscriber: every matched face keeps the person directory current."""

import structlog
from faststream.nats import NatsBroker

from schemas import FaceMatched, PersonCreated, subjects
from services.common.bus import EventPublisher, document_publication, durable_pull
from services.identity import handlers
from services.identity.adapters.postgres import PersonDirectory
from services.identity.config import IdentitySettings

DURABLE = "identity"


def register_consumers(
    broker: NatsBroker, settings: IdentitySettings, directory: PersonDirectory, publish: EventPublisher
) -> None:
    options = durable_pull(subjects.FACES_STREAM, DURABLE, subjects.FACES_MATCHED_ALL, settings.max_deliveries)

    @broker.subscriber(**options, max_workers=8, title="identity:faces.matched", description="Record persons.")
    async def on_face_matched(event: FaceMatched) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, event_id=str(event.event_id)):
            await handlers.record_person(event, directory, publish)

    document_publication(broker, "identity.person_created.{tenant}", PersonCreated, "A person first recorded.")
