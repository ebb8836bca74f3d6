"""Matcher's subscriber. Messages are consumed concurrently and gathered into batches, so that one
Milvus search serves many events while each message is still acked only after its own result is
stored and published."""

from collections.abc import Awaitable, Callable, Sequence
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
from services.common.batcher import Batcher
from services.common.bus import document_publication, durable_pull
from services.matcher.config import MatcherSettings
from services.matcher.handlers import (
    MatcherPorts,
    MatchOutcome,
    change_person_kind,
    erase_person,
    mark_not_same,
    merge_persons,
    split_person,
)

DURABLE = "matcher"
LIFECYCLE_FETCH = 8
"""Lifecycle facts are rare and each touches many vectors: small fetches."""
MatchFunction = Callable[[Sequence[FaceIngested]], Awaitable[list[MatchOutcome]]]
MatchBatcher = Batcher[FaceIngested, MatchOutcome]


def match_batcher(match: MatchFunction, max_batch: int, max_wait: float, concurrent: int = 1) -> MatchBatcher:
    """Gathers events submitted by concurrent workers into one `match` call (at most `max_batch`, waiting
    at most `max_wait` seconds). Up to `concurrent` batches run at once: a batch's search and insert hold its
    tenant's lease, so a batch of the same tenant still searches after the previous one stored its persons,
    while the other's decision records and publications (about half a batch's time) overlap. A timeout (a
    tenant's lease held elsewhere, NATS slow) is no event's fault: the whole batch fails and is retried."""
    return Batcher(match, max_batch, max_wait, concurrent, fail_together=(TimeoutError,))


def register_consumers(
    broker: NatsBroker, settings: MatcherSettings, batcher: MatchBatcher, ports: MatcherPorts
) -> None:
    register_face_consumer(broker, settings, batcher)
    register_lifecycle_consumers(broker, settings, ports)
    document_publications(broker)


def register_face_consumer(broker: NatsBroker, settings: MatcherSettings, batcher: MatchBatcher) -> None:
    options = durable_pull(
        subjects.FACES_STREAM, DURABLE, subjects.FACES_INGESTED_ALL, settings.max_deliveries, settings.batch_size
    )

    @broker.subscriber(
        **options,
        max_workers=settings.batch_size * settings.concurrent_batches,  # enough in flight to fill every batch
        title="matcher:faces.ingested",
        description="Search the tenant's partition, assign an existing or new person; faces below the quality"
        " floor are counted as unidentified sightings instead.",
    )
    async def on_face_ingested(event: FaceIngested) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, event_id=str(event.event_id)):
            await batcher.submit(event)


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
