"""Reporting's handlers: sightings into visits, unidentified sightings counted, and reporting's step of the
person lifecycle (merge, split, erasure, staff or customer); the `retention` job's deletions."""

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

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
from schemas.base import Event, utc_now
from schemas.ids import derive_event_id
from schemas.registry import RetentionPolicyEntry
from services.common.bus import EventPublisher
from services.common.logging import get_logger
from services.reporting.adapters.postgres import VisitStore
from services.reporting.domain.lifecycle import STEP, OperationOutcome
from services.reporting.domain.visits import PersonVisit, RemovedVisit, VisitChanges, VisitRules

SERVICE = "reporting"
AUDIT_ACTIONS = {
    "merge": "sightings_merged",
    "split": "sightings_split",
    "erase": "sightings_erased",
    "kind_change": "sightings_reattributed",
}
log = get_logger(__name__)


async def record_visit(
    event: FaceMatched, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> list[Event]:
    """`record_visits` of one sighting."""
    return (await record_visits([event], store, rules, publish))[0]


async def record_visits(
    events: Sequence[FaceMatched], store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> list[list[Event]]:
    """Fold matched sightings into their persons' visits (one transaction per tenant) and, after the commit,
    announce per sighting the visits that changed or are gone; what each sighting announced, in order.

    Staff sightings are stored too (an operator may mark the person a customer later) but never make visits;
    the kind an operator gave the person wins over the one the sighting carries. A sighting of an erased
    person is dropped, one of a merged person counts for the person it was merged into (it was in flight
    when the operation happened). Each announcement's id derives from the sighting's event id and the visit's
    state, so a redelivered sighting announces the identical records."""
    outcomes = await store.record_sightings(events, rules)
    now = utc_now()
    announced = [
        visit_announcements(e.tenant_id, o.visits, e.event_id, now) for e, o in zip(events, outcomes, strict=True)
    ]
    await asyncio.gather(
        *(
            publish(subjects.visit_record(e.tenant_id, record.site_id), record)
            for e, records in zip(events, announced, strict=True)
            for record in records
        )
    )
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome.owner is None:
            log.info("sighting_of_erased_person_dropped", person_id=str(event.person_id), event_id=str(event.event_id))
    log.info("sightings_recorded", sightings=len(events), announced=sum(len(records) for records in announced))
    return [list(records) for records in announced]


async def record_unidentified_sighting(event: FaceUnidentified, store: VisitStore) -> bool:
    """Count a sighting the matcher could not identify; a redelivered one (same event id) is counted once.
    It belongs to nobody, so it touches no visit."""
    recorded = await store.record_unidentified(event)
    log.info("unidentified_sighting_recorded", duplicate=not recorded)
    return recorded


async def merge_persons(
    event: PersonsMerged, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> list[Event]:
    """Reporting's step of a merge: the merged persons' sightings and visits become `person_id`'s."""
    return await complete_step(await store.merge_persons(event, rules), event.tenant_id, publish)


async def split_person(
    event: PersonSplit, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> list[Event]:
    """Reporting's step of a split: the named sightings and their visits become `new_person_id`'s."""
    return await complete_step(await store.split_person(event, rules), event.tenant_id, publish)


async def erase_person(
    event: PersonErased, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> list[Event]:
    """Reporting's step of an erasure: the person's sightings and visits are deleted."""
    return await complete_step(await store.erase_person(event, rules), event.tenant_id, publish)


async def change_person_kind(
    event: PersonKindChanged, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> list[Event]:
    """Reporting's step of marking a person staff (its visits are removed from every count) or a customer
    again (its visits come back from its stored sightings, with the same visit ids)."""
    return await complete_step(await store.change_person_kind(event, rules), event.tenant_id, publish)


async def complete_step(outcome: OperationOutcome, tenant_id: str, publish: EventPublisher) -> list[Event]:
    """Announce an operation's outcome after its commit: the visits, the audit entry, then the step done.

    Everything derives from the stored outcome, so a redelivered fact publishes identical events (ids and
    content), which JetStream and every consumer drop; the step is announced last, once the rest is out."""
    announced = await announce_visits(tenant_id, outcome.visits, outcome.operation_id, outcome.completed_at, publish)
    entry = audit_entry(tenant_id, outcome)
    await publish(subjects.audit_entry(SERVICE, entry.action, tenant_id), entry)
    step = step_completed(tenant_id, outcome)
    await publish(subjects.operation_step(SERVICE, tenant_id), step)
    log.info(
        "operation_step_completed",
        operation_id=str(outcome.operation_id),
        kind=outcome.kind,
        changed_sightings=outcome.changed_sightings,
        visits_changed=len(outcome.visits.changed),
        visits_removed=len(outcome.visits.removed),
    )
    return [*announced, entry, step]


async def announce_visits(
    tenant_id: str, changes: VisitChanges, cause_id: uuid.UUID, at: datetime, publish: EventPublisher
) -> list[Event]:
    """Publish a `VisitRecord` per changed visit and a `VisitRemoved` per visit gone, on the visit's site."""
    events = visit_announcements(tenant_id, changes, cause_id, at)
    for event in events:
        await publish(subjects.visit_record(tenant_id, event.site_id), event)
    return list(events)


def visit_announcements(
    tenant_id: str, changes: VisitChanges, cause_id: uuid.UUID, at: datetime
) -> list[VisitRecord | VisitRemoved]:
    """A `VisitRecord` per changed visit and a `VisitRemoved` per visit gone."""
    return [
        *(visit_record(tenant_id, placed, cause_id, at) for placed in changes.changed),
        *(visit_removed(tenant_id, removed, cause_id, at) for removed in changes.removed),
    ]


def visit_record(tenant_id: str, placed: PersonVisit, cause_id: uuid.UUID, at: datetime) -> VisitRecord:
    """The id hashes the visit's state and what caused the change (a sighting or an operation): re-announcing
    after a redelivery is deduplicated, while a visit that comes back after being removed is announced anew."""
    visit = placed.visit
    state = (
        f"{cause_id}|{placed.person_id}|{visit.started_at.isoformat()}|{visit.last_seen_at.isoformat()}"
        f"|{visit.sightings}|{visit.is_returning}"
    )
    return VisitRecord(
        event_id=derive_event_id(visit.visit_id, state),
        tenant_id=tenant_id,
        occurred_at=at,
        visit_id=visit.visit_id,
        site_id=placed.site_id,
        person_id=placed.person_id,
        started_at=visit.started_at,
        last_seen_at=visit.last_seen_at,
        sightings=visit.sightings,
        is_returning=visit.is_returning,
    )


def visit_removed(tenant_id: str, removed: RemovedVisit, cause_id: uuid.UUID, at: datetime) -> VisitRemoved:
    return VisitRemoved(
        event_id=derive_event_id(removed.visit_id, f"removed|{cause_id}|{removed.person_id}"),
        tenant_id=tenant_id,
        occurred_at=at,
        visit_id=removed.visit_id,
        site_id=removed.site_id,
        person_id=removed.person_id,
    )


def step_completed(tenant_id: str, outcome: OperationOutcome) -> OperationStepCompleted:
    return OperationStepCompleted(
        event_id=derive_event_id(outcome.operation_id, f"{SERVICE}/{STEP}"),
        tenant_id=tenant_id,
        occurred_at=outcome.completed_at,
        operation_id=outcome.operation_id,
        service=SERVICE,
        step=STEP,
        changed=outcome.changed_sightings,
    )


def audit_entry(tenant_id: str, outcome: OperationOutcome) -> AuditEntryRecorded:
    details: dict[str, object] = {
        "operation_id": str(outcome.operation_id),
        "step": STEP,
        "sightings_changed": outcome.changed_sightings,
        "visits_changed": len(outcome.visits.changed),
        "visits_removed": len(outcome.visits.removed),
    }
    if outcome.person_kind is not None:
        details["person_kind"] = outcome.person_kind.value
    return AuditEntryRecorded(
        event_id=derive_event_id(outcome.operation_id, f"{SERVICE}/audit"),
        tenant_id=tenant_id,
        occurred_at=outcome.completed_at,
        service=SERVICE,
        action=AUDIT_ACTIONS[outcome.kind],
        actor=SERVICE,
        resource=f"person/{outcome.person_id}",
        details=details,
    )


RETENTION_PERSONS_PER_TRANSACTION = 100
"""Persons locked at once while their sightings expire: bounded so a first run with years of data holds neither
many locks nor one long transaction."""


async def delete_expired_sightings_and_visits(
    policy: RetentionPolicyEntry,
    now: datetime,
    store: VisitStore,
    rules: VisitRules,
    dropped: dict[str, int] | None = None,
) -> dict[str, int]:
    """Reporting's retention for one tenant. Sightings captured before `now - sightings_days` go by whole visits
    (a visit still going on at the cutoff keeps all its sightings) and the visits that lost theirs are archived:
    kept for reports, never recomputed. Unidentified sightings go at the same cutoff; archived visits that
    started before `now - visits_days` go. Sightings younger than the returning lookback are always kept, since
    whether a new visit is returning is decided from them. A re-run deletes nothing more. `dropped` is what
    `drop_expired_partitions` took of this tenant: it is added to the counts."""
    sightings_days = max(policy.sightings_days, rules.lookback.days)
    sightings_before, visits_before = now - timedelta(days=sightings_days), now - timedelta(days=policy.visits_days)
    persons = await store.persons_with_sightings_before(policy.tenant_id, sightings_before)
    sightings = archived = 0
    for start in range(0, len(persons), RETENTION_PERSONS_PER_TRANSACTION):
        chunk = persons[start : start + RETENTION_PERSONS_PER_TRANSACTION]
        deleted, newly_archived = await store.expire_sightings_of(policy.tenant_id, chunk, sightings_before)
        sightings, archived = sightings + deleted, archived + newly_archived
    unidentified, visits = await store.expire_unidentified_and_visits(policy.tenant_id, sightings_before, visits_before)
    by_partition = dropped or {}
    return {
        "sightings": sightings + by_partition.get("sightings", 0),
        "unidentified_sightings": unidentified,
        "visits_archived": archived + by_partition.get("visits_archived", 0),
        "visits": visits + by_partition.get("visits", 0),
    }


async def drop_expired_partitions(
    policies: Sequence[RetentionPolicyEntry],
    default: RetentionPolicyEntry,
    now: datetime,
    store: VisitStore,
    rules: VisitRules,
) -> dict[str, dict[str, int]]:
    """Reporting's retention by whole months, before the per-tenant row deletions: the monthly partitions that
    every tenant's policy (and the default one, for tenants without their own) lets go are dropped instead of
    having their rows deleted one by one. For each tenant of `policies`, the visits that lose sightings with a
    sightings partition are archived first (kept for reports, never recomputed), as the row path archives
    them, and what the drop takes is counted for its audit. Rows younger than the last whole month past the
    shortest window stay for `delete_expired_sightings_and_visits`. Partitions for the months ahead are made
    too. Returns the counts per tenant (`sightings`, `visits_archived`, `visits`)."""
    await store.ensure_partitions(now, now + PARTITIONS_AHEAD)
    windows = [*policies, default]
    sightings_horizon = min(now - timedelta(days=max(p.sightings_days, rules.lookback.days)) for p in windows)
    visits_horizon = min(now - timedelta(days=p.visits_days) for p in windows)
    sightings_end = max(await store.partitions_ending_by("sightings", sightings_horizon), default=None)
    visits_end = max(await store.partitions_ending_by("visits", visits_horizon), default=None)
    counts: dict[str, dict[str, int]] = {}
    for policy in policies:
        counts[policy.tenant_id] = await store.archive_and_count_before(policy.tenant_id, sightings_end, visits_end)
    dropped = [
        *await store.drop_partitions_before("sightings", sightings_horizon),
        *await store.drop_partitions_before("visits", visits_horizon),
    ]
    log.info("retention_partitions_dropped", partitions=dropped)
    return counts


PARTITIONS_AHEAD = timedelta(days=62)
"""Partitions are made for this far ahead at start and by each retention run (a batch makes any still missing)."""
