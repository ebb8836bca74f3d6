"""Identity's handlers: the person directory kept current from matched faces, and the person lifecycle
(merge, split, erasure, "not the same") as sagas identity initiates and advances (STYLE rule 12)."""

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from schemas import (
    AuditEntryRecorded,
    CropsErasureRequested,
    FaceMatched,
    OperationStepCompleted,
    PersonCreated,
    PersonErased,
    PersonKind,
    PersonKindChanged,
    PersonsMarkedDifferent,
    PersonsMerged,
    PersonSplit,
    subjects,
)
from schemas.ids import derive_event_id, new_event_id
from schemas.registry import RetentionPolicyEntry
from services.common.bus import EventPublisher
from services.common.logging import get_logger
from services.identity.adapters.lifecycle import LifecycleStore, LifecycleUnit, Outgoing
from services.identity.adapters.postgres import PersonDirectory
from services.identity.domain.lifecycle import (
    LifecycleError,
    OperationKind,
    batches_of,
    expected_steps,
    ordered_pair,
    validate_merge,
    validate_split,
)

log = get_logger(__name__)
SERVICE = "identity"


async def record_persons(events: Sequence[FaceMatched], directory: PersonDirectory, publish: EventPublisher) -> int:
    """Record a batch of sightings' persons; announce PersonCreated for each person one of these events created
    (again on redelivery, with the same event id, so a crash between commit and publish loses nothing), the
    announcements published together. Returns how many it announced."""
    persons = await directory.record_sightings(events)
    created: dict[uuid.UUID, PersonCreated] = {}
    for event, person in zip(events, persons, strict=True):
        if person is None:
            log.info("sighting_of_erased_person_dropped", person_id=str(event.person_id), event_id=str(event.event_id))
        elif person.created_by_event == event.event_id:
            created[person.person_id] = PersonCreated(
                event_id=derive_event_id(person.person_id, "person_created"),
                tenant_id=event.tenant_id,
                person_id=person.person_id,
                person_kind=person.kind,
                first_site_id=person.first_site_id,
                first_seen_at=person.first_seen_at,
            )
    await asyncio.gather(
        *(publish(subjects.identity_event("person_created", event.tenant_id), event) for event in created.values())
    )
    return len(created)


async def merge_persons(
    tenant_id: str,
    person_id: uuid.UUID,
    merged_person_ids: Sequence[uuid.UUID],
    actor: str,
    store: LifecycleStore,
    publish: EventPublisher,
) -> uuid.UUID:
    """Merge persons into `person_id`: identity moves their sightings now, matcher and reporting follow
    `PersonsMerged`. Which sightings each merged person had is kept in the result, so the merge can be undone."""
    merged = validate_merge(person_id, merged_person_ids)
    operation_id = new_event_id()
    async with store.unit(tenant_id) as unit:
        await unit.lock_persons([person_id, *merged])
        sightings = {source: await unit.sighting_ids(source) for source in merged}
        moved = await unit.move_sightings(merged, person_id)
        await unit.refresh_person(person_id)
        await unit.retire(merged, person_id, operation_id)
        fact = PersonsMerged(
            event_id=derive_event_id(operation_id, "persons_merged"),
            tenant_id=tenant_id,
            operation_id=operation_id,
            person_id=person_id,
            merged_person_ids=merged,
        )
        details = {"merged_person_ids": [str(p) for p in merged], "sightings_moved": moved}
        outbox = [Outgoing(subjects.identity_event("persons_merged", tenant_id), fact)]
        outbox.append(_audit(tenant_id, operation_id, "persons_merged", actor, person_id, details))
        result: dict[str, object] = {
            "merged": {str(source): [str(s) for s in ids] for source, ids in sightings.items()}
        }
        await _record(
            unit, operation_id, OperationKind.MERGE, person_id, actor, outbox, result, moved, [person_id, *merged]
        )
    await publish_outbox(outbox, publish)
    return operation_id


async def split_person(
    tenant_id: str,
    person_id: uuid.UUID,
    sighting_ids: Sequence[uuid.UUID],
    actor: str,
    store: LifecycleStore,
    publish: EventPublisher,
    new_person_id: uuid.UUID | None = None,
    then: Sequence[dict[str, object]] = (),
) -> uuid.UUID:
    """Split sightings off `person_id` into a new person (or, undoing a merge, into the person it absorbed).
    `then`: further splits of the same person (an undo), started one after another as each completes."""
    operation_id = new_event_id()
    target = new_person_id or derive_event_id(operation_id, "split_person")
    async with store.unit(tenant_id) as unit:
        [person] = (await unit.lock_persons([person_id])).values()
        chosen = validate_split(set(await unit.sighting_ids(person_id)), sighting_ids)
        await unit.revive(target)
        await unit.create_person(target, person.kind, operation_id)
        moved = await unit.move_sightings([person_id], target, chosen)
        await unit.refresh_person(person_id)
        await unit.refresh_person(target)
        fact = PersonSplit(
            event_id=derive_event_id(operation_id, "person_split"),
            tenant_id=tenant_id,
            operation_id=operation_id,
            person_id=person_id,
            new_person_id=target,
            sighting_ids=chosen,
        )
        details = {"new_person_id": str(target), "sightings_moved": moved}
        outbox = [Outgoing(subjects.identity_event("person_split", tenant_id), fact)]
        outbox.append(_audit(tenant_id, operation_id, "person_split", actor, person_id, details))
        result: dict[str, object] = {"new_person_id": str(target), "sightings_moved": moved, "then_split": list(then)}
        await _record(
            unit, operation_id, OperationKind.SPLIT, person_id, actor, outbox, result, moved, [person_id, target]
        )
    await publish_outbox(outbox, publish)
    return operation_id


async def undo_merge(
    tenant_id: str, operation_id: uuid.UUID, actor: str, store: LifecycleStore, publish: EventPublisher
) -> uuid.UUID:
    """Split every person a merge joined back out, under its old id, with the sightings it had then (those
    that still belong to the merged person): one split operation per person, each started when the one
    before completes (a person takes part in one open operation at a time). Returns the first."""
    operation = await store.get_operation(tenant_id, operation_id)
    if operation is None or operation.kind is not OperationKind.MERGE:
        raise LifecycleError(f"operation {operation_id} is not a merge of tenant {tenant_id}")
    splits: list[dict[str, object]] = [
        {"person_id": str(person), "sighting_ids": [str(s) for s in sightings]}
        for person, sightings in (await store.merged_sightings(tenant_id, operation_id)).items()
    ]
    return await _next_split(tenant_id, operation.person_id, splits, actor, store, publish)


async def _next_split(
    tenant_id: str,
    person_id: uuid.UUID,
    splits: Sequence[dict[str, object]],
    actor: str,
    store: LifecycleStore,
    publish: EventPublisher,
) -> uuid.UUID:
    first, rest = splits[0], splits[1:]
    sightings = [uuid.UUID(str(s)) for s in first["sighting_ids"]]  # type: ignore[attr-defined]
    new_person = uuid.UUID(str(first["person_id"]))
    return await split_person(tenant_id, person_id, sightings, actor, store, publish, new_person, rest)


async def erase_person(
    tenant_id: str, person_id: uuid.UUID, actor: str, store: LifecycleStore, publish: EventPublisher
) -> uuid.UUID:
    """Erase a person: identity deletes its row and sightings now; matcher deletes its vectors, reporting its
    sightings and visits (`PersonErased`), ingest its crops (`CropsErasureRequested`, in batches). The audit
    keeps who, when and which id, never a face, a vector or a crop."""
    operation_id = new_event_id()
    async with store.unit(tenant_id) as unit:
        await unit.lock_persons([person_id])
        crop_keys = await unit.delete_sightings(person_id)
        await unit.retire([person_id], None, operation_id)
        batches = batches_of(crop_keys)
        outbox = [
            Outgoing(
                subjects.identity_event("person_erased", tenant_id),
                PersonErased(
                    event_id=derive_event_id(operation_id, "person_erased"),
                    tenant_id=tenant_id,
                    operation_id=operation_id,
                    person_id=person_id,
                ),
            ),
            *(
                Outgoing(
                    subjects.identity_event("crops_erasure_requested", tenant_id),
                    CropsErasureRequested(
                        event_id=derive_event_id(operation_id, f"crops_erasure_requested/{number}"),
                        tenant_id=tenant_id,
                        operation_id=operation_id,
                        person_id=person_id,
                        batch=number,
                        batches=len(batches),
                        crop_keys=keys,
                    ),
                )
                for number, keys in enumerate(batches)
            ),
            _audit(tenant_id, operation_id, "person_erased", actor, person_id, {"crops": len(crop_keys)}),
        ]
        await _record(
            unit,
            operation_id,
            OperationKind.ERASURE,
            person_id,
            actor,
            outbox,
            {},
            len(crop_keys),
            [person_id],
            len(batches),
        )
    await publish_outbox(outbox, publish)
    return operation_id


async def change_kind(
    tenant_id: str, person_id: uuid.UUID, kind: PersonKind, actor: str, store: LifecycleStore, publish: EventPublisher
) -> uuid.UUID:
    """Mark a person as staff (its visits leave every count) or as a customer again (they come back):
    identity changes the person's kind now, the matcher relabels its vectors and reporting re-attributes its
    visits (`PersonKindChanged`). Marking a person with the kind it has is still an operation (harmless)."""
    operation_id = new_event_id()
    async with store.unit(tenant_id) as unit:
        await unit.lock_persons([person_id])
        changed = await unit.set_kind(person_id, kind)
        fact = PersonKindChanged(
            event_id=derive_event_id(operation_id, "person_kind_changed"),
            tenant_id=tenant_id,
            operation_id=operation_id,
            person_id=person_id,
            kind=kind,
        )
        outbox = [
            Outgoing(subjects.identity_event("person_kind_changed", tenant_id), fact),
            _audit(tenant_id, operation_id, "person_kind_changed", actor, person_id, {"kind": kind.value}),
        ]
        result: dict[str, object] = {"kind": kind.value, "changed": changed}
        await _record(
            unit, operation_id, OperationKind.KIND_CHANGE, person_id, actor, outbox, result, int(changed), [person_id]
        )
    await publish_outbox(outbox, publish)
    return operation_id


async def mark_different(
    tenant_id: str,
    person_id: uuid.UUID,
    other_person_id: uuid.UUID,
    actor: str,
    store: LifecycleStore,
    publish: EventPublisher,
) -> None:
    """Record that two persons are different people; the matcher keeps their faces apart from then on."""
    pair = ordered_pair(person_id, other_person_id)
    async with store.unit(tenant_id) as unit:
        await unit.lock_persons(list(pair))
        await unit.mark_different(pair, actor)
    fact = PersonsMarkedDifferent(
        event_id=derive_event_id(pair[0], f"different_from/{pair[1]}"),
        tenant_id=tenant_id,
        person_id=pair[0],
        other_person_id=pair[1],
    )
    await publish(subjects.identity_event("persons_marked_different", tenant_id), fact)
    audit = _audit(tenant_id, fact.event_id, "persons_marked_different", actor, pair[0], {"other": str(pair[1])})
    await publish(audit.subject, audit.event)


async def record_step(event: OperationStepCompleted, store: LifecycleStore, publish: EventPublisher) -> None:
    """Advance an operation with a step another service completed; audit the operation once it is done."""
    outcome = await store.complete_step(
        event.tenant_id, event.operation_id, f"{event.service}/{event.step}", event.changed
    )
    if outcome is None:
        log.warning("step_of_unknown_operation", operation_id=str(event.operation_id), service=event.service)
        return
    operation, completed_now = outcome
    then = operation.result.get("then_split") or []
    if completed_now and then:
        await _next_split(operation.tenant_id, operation.person_id, then, operation.requested_by, store, publish)
    if completed_now or operation.status.value == "completed":
        audit = _audit(
            operation.tenant_id,
            operation.operation_id,
            "operation_completed",
            SERVICE,
            operation.person_id,
            {"kind": operation.kind.value, "steps": len(operation.steps)},
        )
        await publish(audit.subject, audit.event)  # derived id: a repeat is dropped by JetStream


async def resume_open_operations(store: LifecycleStore, publish: EventPublisher, older_than_seconds: float) -> int:
    """Publish again the events of operations still open (identity may have died before publishing them, or
    a service lost them): their ids are derived, so a copy JetStream still remembers is dropped and a step
    already done is not redone. Returns how many operations were resumed."""
    open_operations = await store.open_operations(older_than_seconds)
    for tenant_id, operation_id in open_operations:
        await publish_outbox(await store.outbox(tenant_id, operation_id), publish)
    if open_operations:
        log.info("operations_resumed", count=len(open_operations))
    return len(open_operations)


async def publish_outbox(outbox: Sequence[Outgoing], publish: EventPublisher) -> None:
    for item in outbox:
        await publish(item.subject, item.event)


async def _record(
    unit: LifecycleUnit,
    operation_id: uuid.UUID,
    kind: OperationKind,
    person_id: uuid.UUID,
    actor: str,
    outbox: list[Outgoing],
    result: dict[str, object],
    changed: int,
    involved: Sequence[uuid.UUID],
    crop_batches: int = 0,
) -> None:
    requested = _audit(unit.tenant_id, operation_id, f"{kind.value}_requested", actor, person_id, {})
    steps = expected_steps(kind, crop_batches)
    await unit.record_operation(
        operation_id, kind, person_id, actor, steps, [requested, *outbox], result, changed, involved
    )
    outbox.insert(0, requested)


def _audit(
    tenant_id: str, operation_id: uuid.UUID, action: str, actor: str, person_id: uuid.UUID, details: dict[str, object]
) -> Outgoing:
    entry = AuditEntryRecorded(
        event_id=derive_event_id(operation_id, f"audit/{action}"),
        tenant_id=tenant_id,
        service=SERVICE,
        action=action,
        actor=actor,
        resource=f"person/{person_id}",
        details={"operation_id": str(operation_id), **details},
    )
    return Outgoing(subjects.audit_entry(SERVICE, action, tenant_id), entry)


async def delete_expired_sightings(
    policy: RetentionPolicyEntry, now: datetime, directory: PersonDirectory
) -> dict[str, int]:
    """Identity's retention for one tenant: its sightings (crop keys, similarity) captured before
    `now - sightings_days` go; the persons stay. Crops expire no later (the policy forbids crops_days above
    sightings_days), so an erasure still finds every crop that exists through the sightings kept."""
    deleted = await directory.delete_sightings_before(policy.tenant_id, now - timedelta(days=policy.sightings_days))
    return {"sightings": deleted}
