"""Identity's subscribers: matched faces keep the person directory current; steps other services report
advance the lifecycle operations identity initiated."""

import structlog
from faststream.nats import NatsBroker

from schemas import (
    CropsErasureRequested,
    FaceMatched,
    OperationStepCompleted,
    PersonCreated,
    PersonErased,
    PersonKindChanged,
    PersonsMarkedDifferent,
    PersonsMerged,
    PersonSplit,
    subjects,
)
from services.common.bus import EventPublisher, document_publication, durable_pull
from services.identity import handlers
from services.identity.adapters.lifecycle import LifecycleStore
from services.identity.adapters.postgres import PersonDirectory
from services.identity.config import IdentitySettings

DURABLE = "identity"
OPERATIONS_DURABLE = "identity-operations"


def register_consumers(
    broker: NatsBroker,
    settings: IdentitySettings,
    directory: PersonDirectory,
    lifecycle: LifecycleStore,
    publish: EventPublisher,
) -> None:
    options = durable_pull(subjects.FACES_STREAM, DURABLE, subjects.FACES_MATCHED_ALL, settings.max_deliveries)

    @broker.subscriber(**options, max_workers=8, title="identity:faces.matched", description="Record persons.")
    async def on_face_matched(event: FaceMatched) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, event_id=str(event.event_id)):
            await handlers.record_person(event, directory, publish)

    steps = durable_pull(
        subjects.OPERATIONS_STREAM, OPERATIONS_DURABLE, subjects.OPERATIONS_ALL, settings.max_deliveries
    )

    @broker.subscriber(**steps, title="identity:operations", description="Advance lifecycle operations.")
    async def on_step_completed(event: OperationStepCompleted) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await handlers.record_step(event, lifecycle, publish)

    document_publication(broker, "identity.person_created.{tenant}", PersonCreated, "A person first recorded.")
    document_publication(broker, "identity.persons_merged.{tenant}", PersonsMerged, "Persons merged into one.")
    document_publication(broker, "identity.person_split.{tenant}", PersonSplit, "Sightings split off a person.")
    document_publication(broker, "identity.person_erased.{tenant}", PersonErased, "A person to erase everywhere.")
    document_publication(
        broker, "identity.crops_erasure_requested.{tenant}", CropsErasureRequested, "Crops of an erased person."
    )
    document_publication(
        broker, "identity.person_kind_changed.{tenant}", PersonKindChanged, "A person marked staff or customer."
    )
    document_publication(
        broker, "identity.persons_marked_different.{tenant}", PersonsMarkedDifferent, "Two persons are not the same."
    )
