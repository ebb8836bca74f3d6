"""Reporting's subscribers: matched faces become visits; unidentified sightings are counted; merges, splits
and erasures of persons move or delete their sightings and visits; marking a person staff or a customer
again removes or restores its visits."""

import structlog
from faststream.nats import NatsBroker

from schemas import (
    AuditEntryRecorded,
    FaceMatched,
    FaceUnidentified,
    OperationStepCompleted,
    PersonErased,
    PersonKindChanged,
    PersonsMerged,
    PersonSplit,
    VisitRecord,
    VisitRemoved,
    subjects,
)
from services.common.batch_consumer import BatchConsumer, Decoded, GuardPolicy, batch_subscriber
from services.common.bus import EventPublisher, document_publication, durable_pull
from services.reporting import handlers
from services.reporting.adapters.postgres import VisitStore
from services.reporting.config import ReportingSettings
from services.reporting.domain.visits import VisitRules

SERVICE = "reporting"
DURABLE = "reporting"
DURABLE_UNIDENTIFIED = "reporting-unidentified"
DURABLE_MERGED = "reporting-persons-merged"
DURABLE_SPLIT = "reporting-person-split"
DURABLE_ERASED = "reporting-person-erased"
DURABLE_KIND_CHANGED = "reporting-person-kind-changed"
PERSONS_MERGED_ALL = subjects.identity_event("persons_merged", "*")
PERSON_SPLIT_ALL = subjects.identity_event("person_split", "*")
PERSON_ERASED_ALL = subjects.identity_event("person_erased", "*")
PERSON_KIND_CHANGED_ALL = subjects.identity_event("person_kind_changed", "*")


def register_consumers(
    broker: NatsBroker, settings: ReportingSettings, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> list[BatchConsumer[FaceMatched]]:
    """Register the FastStream subscribers on `broker`; return the batch consumer of matched sightings, which the
    bootstrap starts."""

    async def on_face_matched(batch: list[Decoded[FaceMatched]]) -> None:
        await handlers.record_visits([item.event for item in batch], store, rules, publish)

    sightings = batch_subscriber(
        subjects.FACES_STREAM,
        DURABLE,
        subjects.FACES_MATCHED_ALL,
        FaceMatched,
        on_face_matched,
        GuardPolicy(SERVICE, settings.max_deliveries, lambda: broker),
        title="reporting:faces.matched",
        description="Sessionize visits: each fetch of up to REVISIT_SIGHTING_BATCH_SIZE sightings is folded in one"
        " transaction per tenant, its messages acked after the commit.",
        batch_size=settings.sighting_batch_size,
    )
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

    register_lifecycle_consumers(broker, settings, store, rules, publish)
    document_publications(broker)
    return [sightings]


def document_publications(broker: NatsBroker) -> None:
    document_publication(broker, "visits.{tenant}.{site}", VisitRecord, "A visit opened or changed.")
    document_publication(broker, "visits.{tenant}.{site}", VisitRemoved, "A visit that no longer exists.")
    document_publication(
        broker, "operations.reporting.{tenant}", OperationStepCompleted, "Reporting's step (visits) of an operation."
    )
    document_publication(
        broker,
        "audit.reporting.{action}.{tenant}",
        AuditEntryRecorded,
        "Sightings moved, erased or re-attributed by an operation.",
    )


def register_lifecycle_consumers(
    broker: NatsBroker, settings: ReportingSettings, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> None:
    """Reporting's step of the person lifecycle sagas: one durable consumer per fact identity publishes."""
    merged = durable_pull(subjects.IDENTITY_STREAM, DURABLE_MERGED, PERSONS_MERGED_ALL, settings.max_deliveries)

    @broker.subscriber(**merged, title="reporting:identity.persons_merged", description="Merge sightings, visits.")
    async def on_persons_merged(event: PersonsMerged) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await handlers.merge_persons(event, store, rules, publish)

    split = durable_pull(subjects.IDENTITY_STREAM, DURABLE_SPLIT, PERSON_SPLIT_ALL, settings.max_deliveries)

    @broker.subscriber(**split, title="reporting:identity.person_split", description="Split sightings, visits.")
    async def on_person_split(event: PersonSplit) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await handlers.split_person(event, store, rules, publish)

    erased = durable_pull(subjects.IDENTITY_STREAM, DURABLE_ERASED, PERSON_ERASED_ALL, settings.max_deliveries)

    @broker.subscriber(**erased, title="reporting:identity.person_erased", description="Erase sightings, visits.")
    async def on_person_erased(event: PersonErased) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await handlers.erase_person(event, store, rules, publish)

    kind_changed = durable_pull(
        subjects.IDENTITY_STREAM, DURABLE_KIND_CHANGED, PERSON_KIND_CHANGED_ALL, settings.max_deliveries
    )

    @broker.subscriber(
        **kind_changed,
        title="reporting:identity.person_kind_changed",
        description="Staff: remove the person's visits; customer: restore them from its sightings.",
    )
    async def on_person_kind_changed(event: PersonKindChanged) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await handlers.change_person_kind(event, store, rules, publish)
