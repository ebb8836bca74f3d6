"""Matcher's subscribers. Ingested faces come through a batch consumer (`services/common/batch_consumer.py`): each
fetched batch is matched with one search per tenant and model, and its messages are acked once every decision is
recorded and every outcome published. The rare lifecycle facts stay on FastStream's per-message subscribers."""

from typing import Any

import structlog
from faststream.nats import NatsBroker

from schemas import (
    AuditEntryRecorded,
    FaceIngested,
    FaceMatched,
    FaceUnidentified,
    OperationStepCompleted,
    PersonErased,
    PersonKindChanged,
    PersonsMarkedDifferent,
    PersonsMerged,
    PersonSplit,
    subjects,
)
from services.common.batch_consumer import BatchConsumer, Decoded, GuardPolicy, batch_subscriber
from services.common.bus import document_publication, durable_pull
from services.matcher.config import MatcherSettings
from services.matcher.handlers import (
    SERVICE,
    MatcherPorts,
    change_person_kind,
    distinct_faces,
    erase_person,
    identify_faces,
    mark_not_same,
    merge_persons,
    split_person,
)

DURABLE = "matcher"
LIFECYCLE_FETCH = 8
"""Lifecycle facts are rare and each touches many vectors: small fetches."""


def register_consumers(
    broker: NatsBroker, settings: MatcherSettings, ports: MatcherPorts
) -> list[BatchConsumer[FaceIngested]]:
    """Register the FastStream subscribers on `broker`; return the batch consumer, which the bootstrap starts."""
    register_lifecycle_consumers(broker, settings, ports)
    document_publications(broker)
    return [face_consumer(broker, settings, ports)]


def face_consumer(broker: NatsBroker, settings: MatcherSettings, ports: MatcherPorts) -> BatchConsumer[FaceIngested]:
    """Up to `batch_size` ingested faces per fetch, matched together. Batches run one after another, so a batch
    of a tenant searches after the previous one stored its persons. A timeout (a tenant's lease held by another
    replica, NATS slow) is an outage for the batch consumer: the whole batch waits and tries again, not face by face."""

    async def on_faces_ingested(batch: list[Decoded[FaceIngested]]) -> None:
        await identify_faces(distinct_faces([item.event for item in batch]), ports)

    return batch_subscriber(
        subjects.FACES_STREAM,
        DURABLE,
        subjects.FACES_INGESTED_ALL,
        FaceIngested,
        on_faces_ingested,
        GuardPolicy(SERVICE, settings.max_deliveries, lambda: broker),
        title="matcher:faces.ingested",
        description="Search the tenant's partition, assign an existing or new person; faces below the quality"
        " floor are counted as unidentified sightings instead (in batches).",
        batch_size=settings.batch_size,
    )


def _identity_options(settings: MatcherSettings, fact: str) -> dict[str, Any]:
    """A durable pull consumer of one identity fact for every tenant (`identity.<fact>.*`)."""
    subject = subjects.identity_event(fact, "*")
    return durable_pull(
        subjects.IDENTITY_STREAM, f"{DURABLE}-{fact}", subject, settings.max_deliveries, LIFECYCLE_FETCH
    )


def register_lifecycle_consumers(broker: NatsBroker, settings: MatcherSettings, ports: MatcherPorts) -> None:
    """The matcher's step of the person lifecycle sagas, and the not-same pairs it matches with."""

    @broker.subscriber(
        **_identity_options(settings, "persons_merged"),
        title="matcher:identity.persons_merged",
        description="Relabel the merged persons' vectors to the remaining person; announce step `vectors`.",
    )
    async def on_persons_merged(event: PersonsMerged) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await merge_persons(event, ports)

    @broker.subscriber(
        **_identity_options(settings, "person_split"),
        title="matcher:identity.person_split",
        description="Move the listed sightings' vectors to the new person; announce step `vectors`.",
    )
    async def on_person_split(event: PersonSplit) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await split_person(event, ports)

    @broker.subscriber(
        **_identity_options(settings, "person_erased"),
        title="matcher:identity.person_erased",
        description="Delete every vector of the person; announce step `vectors`.",
    )
    async def on_person_erased(event: PersonErased) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await erase_person(event, ports)

    @broker.subscriber(
        **_identity_options(settings, "person_kind_changed"),
        title="matcher:identity.person_kind_changed",
        description="Relabel the kind (staff or customer) of every vector of the person; announce step `vectors`.",
    )
    async def on_person_kind_changed(event: PersonKindChanged) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, operation_id=str(event.operation_id)):
            await change_person_kind(event, ports)

    @broker.subscriber(
        **_identity_options(settings, "persons_marked_different"),
        title="matcher:identity.persons_marked_different",
        description="Remember that two persons are different: a face they cannot tell apart joins neither.",
    )
    async def on_persons_marked_different(event: PersonsMarkedDifferent) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id):
            await mark_not_same(event, ports)


def document_publications(broker: NatsBroker) -> None:
    document_publication(broker, "faces.matched.{tenant}.{site}", FaceMatched, "A sighting assigned to a person.")
    document_publication(
        broker,
        "faces.unidentified.{tenant}.{site}",
        FaceUnidentified,
        "A sighting too poor to recognise: counted, never a person.",
    )
    document_publication(
        broker,
        "operations.matcher.{tenant}",
        OperationStepCompleted,
        "The matcher's step `vectors` of a merge, split, erasure or kind change is done (identical when repeated).",
    )
    document_publication(
        broker,
        "audit.matcher.{action}.{tenant}",
        AuditEntryRecorded,
        "Vectors relabelled, moved, erased or marked staff/customer for an operation (counts, never a vector).",
    )
