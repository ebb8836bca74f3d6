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
from services.common.batch_consumer import BatchConsumer, Decoded, GuardPolicy, batch_subscriber
from services.common.bus import EventPublisher, document_publication, durable_pull
from services.identity import handlers
from services.identity.adapters.lifecycle import LifecycleStore
from services.identity.adapters.postgres import PersonDirectory
from services.identity.config import IdentitySettings

DURABLE = "identity"
OPERATIONS_DURABLE = "identity-operations"
BATCH_SIZE = 64
"""Matched faces recorded per transaction at most."""


def register_consumers(
    broker: NatsBroker,
    settings: IdentitySettings,
    directory: PersonDirectory,
    lifecycle: LifecycleStore,
    publish: EventPublisher,
) -> list[BatchConsumer[FaceMatched]]:
    """Register the FastStream subscribers on `broker`; return the batch consumers, which the bootstrap starts."""

    async def on_face_matched(batch: list[Decoded[FaceMatched]]) -> None:
        await handlers.record_persons([item.event for item in batch], directory, publish)

    matched = batch_subscriber(
        subjects.FACES_STREAM,
        DURABLE,
        subjects.FACES_MATCHED_ALL,
        FaceMatched,
        on_face_matched,
        GuardPolicy(handlers.SERVICE, settings.max_deliveries, lambda: broker),
        title="identity:faces.matched",
        description="Record persons (in batches).",
        batch_size=BATCH_SIZE,
    )

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
    return [matched]
