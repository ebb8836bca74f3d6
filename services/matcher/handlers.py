"""Matcher's handlers: faces good enough to recognise are assigned to persons (FaceMatched); the others are
counted as unidentified sightings (FaceUnidentified) and never become persons.

Two floors on the edge's quality: below `identify_min_quality` a face is not even searched; below
`enrol_min_quality` it may join a person it matches but never starts one nor adds a vector (see
`domain.assignment`). A face only just above `match_threshold` (within `ambiguous_band`) starts a provisional
person whose pair with the candidate is a duplicate suggestion. A tenant may override all four
(`domain.tenant_settings`)."""

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from schemas import (
    AuditEntryRecorded,
    FaceIngested,
    FaceMatched,
    FaceUnidentified,
    OperationStepCompleted,
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
from services.common.bus import EventPublisher, InvalidEvent
from services.common.logging import get_logger
from services.common.metrics import UNIDENTIFIED_SIGHTINGS
from services.matcher.adapters.ambiguous_pairs import AmbiguousPairRecord, AmbiguousPairs
from services.matcher.adapters.decisions import MatchDecisions
from services.matcher.adapters.milvus import (
    SEARCH_LIMIT,
    CollectionRows,
    DimensionMismatch,
    FaceVectorStore,
    StoredVector,
    relabelled,
)
from services.matcher.adapters.not_same import NotSamePairs
from services.matcher.adapters.staff_gallery import StaffGallery
from services.matcher.adapters.step_ledger import StepLedger, StepResult
from services.matcher.adapters.tenant_settings import TenantSettings
from services.matcher.adapters.vector_index import TenantVectorsHeld, VectorIndex
from services.matcher.config import MatcherSettings
from services.matcher.domain.assignment import Assignment, Vectors, assign_batch, normalize
from services.matcher.domain.duplicates import DuplicatePair, closest_pairs, rank_duplicates, standing_pairs
from services.matcher.domain.not_same import NOT_SAME_MARGIN, PersonPair, decisive_candidate, person_pair
from services.matcher.domain.quality_floor import identifiable_indexes
from services.matcher.domain.retention import persons_unseen_since
from services.matcher.domain.staff import best_staff_match, staff_person_id
from services.matcher.domain.tenant_settings import MatchPolicy, TenantMatchSettings, check_policy, effective_policy

log = get_logger(__name__)
MatchOutcome = FaceMatched | FaceUnidentified
SERVICE = "matcher"
STEP = "vectors"
SETTINGS_CHANGED = "settings_changed"
GroupKey = tuple[str, str, int]
"""(tenant, embedding model, dimension): the faces one search serves."""


@dataclass(frozen=True)
class MatcherPorts:
    """Everything the handlers use, built once by `bootstrap`."""

    settings: MatcherSettings
    store: FaceVectorStore
    index: VectorIndex
    decisions: MatchDecisions
    staff: StaffGallery
    not_same: NotSamePairs
    ledger: StepLedger
    publish: EventPublisher
    tenant_settings: TenantSettings
    ambiguous: AmbiguousPairs


def tenant_policy(tenant_id: str, ports: MatcherPorts) -> MatchPolicy:
    """The thresholds this tenant's faces are decided with: the matcher's, with the tenant's overrides."""
    return effective_policy(ports.settings.default_policy, ports.tenant_settings.overrides(tenant_id))


def distinct_faces(events: Sequence[FaceIngested]) -> list[FaceIngested]:
    """Each event once, in the order first seen: a redelivery fetched in the same batch as its first delivery
    would otherwise be searched twice before either decision is recorded, and could start two persons."""
    first: dict[uuid.UUID, FaceIngested] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    return list(first.values())


async def identify_faces(events: Sequence[FaceIngested], ports: MatcherPorts) -> list[MatchOutcome]:
    """Match the faces good enough to recognise; the others are unidentified sightings, never searched,
    stored or made persons. Every outcome is published; results in input order."""
    identifiable = identifiable_indexes(
        [event.quality for event in events],
        [tenant_policy(event.tenant_id, ports).identify_min_quality for event in events],
    )
    results: dict[int, MatchOutcome] = {}
    if identifiable:
        matched = await match_faces([events[i] for i in identifiable], ports)
        results.update(zip(identifiable, matched, strict=True))
    below_floor = [index for index in range(len(events)) if index not in results]
    for index in below_floor:
        results[index] = unidentified_event(events[index])
    await _publish_all(ports.publish, [results[index] for index in below_floor])
    UNIDENTIFIED_SIGHTINGS.inc(len(below_floor))
    if below_floor:
        log.info("faces_unidentified", batch=len(events), below_identify_floor=len(below_floor))
    return [results[i] for i in range(len(events))]


async def match_faces(events: Sequence[FaceIngested], ports: MatcherPorts) -> list[MatchOutcome]:
    """Match `events` (any mix of tenants and models) with one search per tenant and model; results in input order.
    Each event becomes a person's (or a staff member's) sighting, or an unidentified one if it is below the
    enrolment floor and matches nobody. Callers pass only identifiable faces (`identify_faces` does)."""
    groups: dict[GroupKey, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        groups[(event.tenant_id, event.embedding_model, len(event.embedding))].append(index)
    results: dict[int, MatchOutcome] = {}
    for key, indexes in groups.items():
        try:
            matched = await _match_group(key, [events[i] for i in indexes], ports)
        except DimensionMismatch as error:
            raise InvalidEvent(str(error)) from error
        results.update(zip(indexes, matched, strict=True))
    ordered = [results[i] for i in range(len(events))]
    await _publish_all(ports.publish, ordered)
    matched_faces = [outcome for outcome in ordered if isinstance(outcome, FaceMatched)]
    not_enrolled = len(ordered) - len(matched_faces)
    UNIDENTIFIED_SIGHTINGS.inc(not_enrolled)
    log.info(
        "faces_matched",
        batch=len(ordered),
        new_persons=sum(m.is_new_person for m in matched_faces),
        staff=sum(m.person_kind == PersonKind.STAFF for m in matched_faces),
        unmatched_below_enrol_floor=not_enrolled,
    )
    return ordered


async def _publish_all(publish: EventPublisher, outcomes: Sequence[MatchOutcome]) -> None:
    """Publish a batch's outcomes concurrently: awaiting each JetStream ack in turn made a batch of 256 wait for
    256 round trips (each publish is deduplicated by its event id, so a batch retried after a failure is safe)."""
    await asyncio.gather(*(_publish(publish, outcome) for outcome in outcomes))


async def _publish(publish: EventPublisher, outcome: MatchOutcome) -> None:
    if isinstance(outcome, FaceMatched):
        await publish(subjects.face_matched(outcome.tenant_id, outcome.site_id), outcome)
    else:
        await publish(subjects.face_unidentified(outcome.tenant_id, outcome.site_id), outcome)


async def _match_group(key: GroupKey, events: list[FaceIngested], ports: MatcherPorts) -> list[MatchOutcome]:
    """A face decided before is answered with its recorded FaceMatched; a staff face is staff; the rest are
    searched under the tenant's lease. New decisions are recorded before they are published."""
    tenant_id, model, dim = key
    decided: dict[uuid.UUID, MatchOutcome] = dict(await ports.decisions.find(tenant_id, [e.event_id for e in events]))
    undecided = [event for event in events if event.event_id not in decided]
    vectors = normalize(np.asarray([event.embedding for event in undecided], dtype=np.float32).reshape(-1, dim))
    new = _staff_sightings(undecided, vectors, ports)
    rest = [index for index, event in enumerate(undecided) if event.event_id not in new]
    if rest:
        async with ports.index.holding(tenant_id, model, dim) as held:  # no other replica writes this tenant meanwhile
            new |= await _search_and_assign(tenant_id, held, [undecided[i] for i in rest], vectors[rest], ports)
    await ports.decisions.record([outcome for outcome in new.values() if isinstance(outcome, FaceMatched)])
    return [decided.get(event.event_id) or new[event.event_id] for event in events]


def _staff_sightings(
    events: list[FaceIngested], vectors: Vectors, ports: MatcherPorts
) -> dict[uuid.UUID, MatchOutcome]:
    """Faces at least `staff_threshold` close to a staff vector of their tenant and model: staff, never stored."""
    staff: dict[uuid.UUID, MatchOutcome] = {}
    for event, vector in zip(events, vectors, strict=True):
        gallery = ports.staff.vectors(event.tenant_id, event.embedding_model)
        match = best_staff_match(vector, gallery, ports.settings.staff_threshold)
        if match is not None:
            person = staff_person_id(event.tenant_id, match.staff_id)
            assignment = Assignment(person, PersonKind.STAFF, False, round(match.similarity, 6), keep_vector=False)
            staff[event.event_id] = _matched_event(event, assignment, None)
    return staff


async def _search_and_assign(
    tenant_id: str, held: TenantVectorsHeld, events: list[FaceIngested], vectors: Vectors, ports: MatcherPorts
) -> dict[uuid.UUID, MatchOutcome]:
    """Search once for the group, decide each face with the tenant's policy (not-same pairs veto a match they
    cannot tell apart), record the ambiguous pairs, store the kept vectors. A sighting whose vector is already
    stored (a crash before its decision was recorded) is rebuilt from the stored row.

    Ambiguous pairs are recorded before the vectors: a crash in between leaves a pair naming a person with
    no vector, which the duplicates route ignores, and the redelivered face is decided again."""
    settings, policy = ports.settings, tenant_policy(tenant_id, ports)
    known = held.stored([event.event_id for event in events])
    fresh = [index for index, event in enumerate(events) if event.event_id not in known]
    assignments: dict[uuid.UUID, Assignment | None] = {}
    if fresh:
        fresh_vectors = vectors[fresh]
        not_same = ports.not_same.pairs(tenant_id)
        # a hit below threshold - margin changes no decision: the best must reach the threshold, and the not-same
        # rule looks only at rivals within the margin of the best
        found = await held.search(fresh_vectors, SEARCH_LIMIT, floor=policy.match_threshold - NOT_SAME_MARGIN)
        best = [decisive_candidate(candidates, not_same) for candidates in found]
        counts = held.counts([c.person_id for c in best if c is not None])
        decided = assign_batch(
            fresh_vectors,
            best,
            counts,
            policy.match_threshold,
            settings.max_vectors_per_person,
            settings.duplicate_vector_similarity,
            new_event_id,
            [events[i].quality >= policy.enrol_min_quality for i in fresh],
            ambiguous_band=policy.ambiguous_band,
        )
        assignments = {events[i].event_id: assignment for i, assignment in zip(fresh, decided, strict=True)}
        await ports.ambiguous.record(tenant_id, _ambiguous_pairs([events[i] for i in fresh], decided))
        await held.insert(_kept_vectors([events[i] for i in fresh], decided, fresh_vectors))
    return {
        event.event_id: _outcome(event, assignments.get(event.event_id), known.get(event.event_id)) for event in events
    }


def _ambiguous_pairs(
    events: list[FaceIngested], decided: list[Assignment | None]
) -> dict[PersonPair, AmbiguousPairRecord]:
    """(provisional person, candidate) of each face that started a provisional person."""
    return {
        person_pair(assignment.person_id, assignment.ambiguous_with): AmbiguousPairRecord(
            similarity=assignment.similarity or 0.0, sighting_id=event.event_id
        )
        for event, assignment in zip(events, decided, strict=True)
        if assignment is not None and assignment.ambiguous_with is not None
    }


def _kept_vectors(events: list[FaceIngested], decided: list[Assignment | None], vectors: Vectors) -> list[StoredVector]:
    return [
        StoredVector(
            event.event_id,
            assignment.person_id,
            event.tenant_id,
            assignment.kind,
            int(event.captured_at.timestamp() * 1000),
            vector.tolist(),
        )
        for event, assignment, vector in zip(events, decided, vectors, strict=True)
        if assignment is not None and assignment.keep_vector
    ]


def _outcome(event: FaceIngested, assignment: Assignment | None, stored: StoredVector | None) -> MatchOutcome:
    """A sighting already stored, or assigned now, is matched; a face that could not enrol is unidentified.

    A face that could not enrol is not stored, so a redelivery decides again: if a person it matches was
    created meanwhile, reporting has it both as an unidentified sighting and as that person's sighting."""
    if stored is None and assignment is None:
        return unidentified_event(event)
    return _matched_event(event, assignment, stored)


def _matched_event(event: FaceIngested, assignment: Assignment | None, stored: StoredVector | None) -> FaceMatched:
    """The FaceMatched of one sighting; a redelivered one is rebuilt from its stored vector, with the same id."""
    if assignment is None:
        assert stored is not None
        assignment = Assignment(stored.person_id, stored.kind, False, 1.0, keep_vector=False)
    return FaceMatched(
        event_id=derive_event_id(event.event_id, "matched"),
        tenant_id=event.tenant_id,
        occurred_at=event.occurred_at,  # not the clock: a rebuilt event must equal the first one
        source_event_id=event.event_id,
        site_id=event.site_id,
        camera_id=event.camera_id,
        captured_at=event.captured_at,
        person_id=assignment.person_id,
        person_kind=assignment.kind,
        is_new_person=assignment.is_new_person,
        similarity=assignment.similarity,
        embedding_model=event.embedding_model,
        crop_key=event.crop_key,
    )


def unidentified_event(event: FaceIngested) -> FaceUnidentified:
    """The id is derived from the ingested event, so a redelivery republishes the same event (deduplicated)."""
    return FaceUnidentified(
        event_id=derive_event_id(event.event_id, "unidentified"),
        tenant_id=event.tenant_id,
        occurred_at=event.occurred_at,
        source_event_id=event.event_id,
        site_id=event.site_id,
        camera_id=event.camera_id,
        captured_at=event.captured_at,
        track_id=event.track_id,
        quality=event.quality,
        embedding_model=event.embedding_model,
        crop_key=event.crop_key,
    )


async def merge_persons(event: PersonsMerged, ports: MatcherPorts) -> OperationStepCompleted:
    """Relabel every vector of the merged persons to the remaining one (which keeps its kind)."""
    merged = [person for person in event.merged_person_ids if person != event.person_id]
    located = await ports.store.vectors_of_persons(event.tenant_id, merged)
    kind = await _kind_of(ports.store, event.tenant_id, event.person_id)
    result = await ports.ledger.claim(event.tenant_id, event.operation_id, _count(located))
    await ports.index.rewrite(event.tenant_id, relabelled(located, event.person_id, kind))
    await ports.ambiguous.forget_persons(event.tenant_id, merged)  # the operator's answer to those suggestions
    return await _complete_step(event.tenant_id, event.operation_id, event.person_id, "vectors_merged", result, ports)


async def split_person(event: PersonSplit, ports: MatcherPorts) -> OperationStepCompleted:
    """Move the listed sightings' vectors that still belong to `person_id` to `new_person_id`."""
    located = await ports.store.vectors_of_sightings(event.tenant_id, event.sighting_ids)
    moving = [
        CollectionRows(part.collection, [row for row in part.rows if row.person_id == event.person_id])
        for part in located
    ]
    kind = await _kind_of(ports.store, event.tenant_id, event.new_person_id)
    result = await ports.ledger.claim(event.tenant_id, event.operation_id, _count(moving))
    await ports.index.rewrite(event.tenant_id, relabelled(moving, event.new_person_id, kind))
    return await _complete_step(event.tenant_id, event.operation_id, event.person_id, "vectors_split", result, ports)


async def erase_person(event: PersonErased, ports: MatcherPorts) -> OperationStepCompleted:
    """Delete every vector of the person (all models) and forget their decisions: their face is a stranger now."""
    located = await ports.store.vectors_of_persons(event.tenant_id, [event.person_id], with_vectors=False)
    result = await ports.ledger.claim(event.tenant_id, event.operation_id, _count(located))
    # decisions first: if the matcher dies in between, the repeat still finds the vectors and forgets again
    await ports.decisions.forget(event.tenant_id, [row.sighting_id for part in located for row in part.rows])
    await ports.index.rewrite(event.tenant_id, located, delete=True)
    await ports.ambiguous.forget_persons(event.tenant_id, [event.person_id])
    return await _complete_step(event.tenant_id, event.operation_id, event.person_id, "vectors_erased", result, ports)


async def change_person_kind(event: PersonKindChanged, ports: MatcherPorts) -> OperationStepCompleted:
    """Relabel the kind of every vector of the person (every model), so a later face matched to it is published
    with the kind an operator gave it. Only rows of another kind are rewritten; the ledger keeps the first count."""
    located = await ports.store.vectors_of_person_not_of_kind(event.tenant_id, event.person_id, event.kind)
    result = await ports.ledger.claim(event.tenant_id, event.operation_id, _count(located))
    await ports.index.rewrite(event.tenant_id, relabelled(located, event.person_id, event.kind))
    action = f"vectors_marked_{event.kind.value}"
    return await _complete_step(event.tenant_id, event.operation_id, event.person_id, action, result, ports)


async def mark_not_same(event: PersonsMarkedDifferent, ports: MatcherPorts) -> None:
    """Remember the pair; from now on a face these two persons cannot tell apart joins neither."""
    if event.person_id == event.other_person_id:
        raise InvalidEvent(f"person {event.person_id} cannot be marked different from itself")
    await ports.not_same.mark(event.tenant_id, event.person_id, event.other_person_id)
    await ports.ambiguous.forget_pair(event.tenant_id, person_pair(event.person_id, event.other_person_id))


async def duplicate_suggestions(
    tenant_id: str, min_similarity: float, limit: int, ports: MatcherPorts
) -> list[DuplicatePair]:
    """Pairs of customer persons whose closest vectors reach `min_similarity`, and the ambiguous matches the
    matcher recorded whatever their similarity, most similar first, without the pairs marked different.
    Exact over every vector of the tenant (per embedding model)."""
    found = []
    customers: set[uuid.UUID] = set()
    for part in await ports.store.all_vectors(tenant_id):
        rows = [row for row in part.rows if row.kind == PersonKind.CUSTOMER]
        customers.update(row.person_id for row in rows)
        if len(rows) > 1:
            vectors = normalize(np.asarray([row.vector for row in rows], dtype=np.float32))
            persons = [row.person_id for row in rows]
            found.append(await asyncio.to_thread(closest_pairs, persons, vectors, min_similarity))
    ambiguous = standing_pairs(await ports.ambiguous.pairs(tenant_id), customers)
    return rank_duplicates(found, ports.not_same.pairs(tenant_id), limit, ambiguous)


def tenant_settings(tenant_id: str, ports: MatcherPorts) -> tuple[TenantMatchSettings, MatchPolicy]:
    """The tenant's overrides and the policy its faces are decided with."""
    return ports.tenant_settings.overrides(tenant_id), tenant_policy(tenant_id, ports)


async def change_tenant_settings(
    tenant_id: str, overrides: TenantMatchSettings, actor: str, ports: MatcherPorts
) -> MatchPolicy:
    """Replace the tenant's overrides; raises `InvertedQualityFloors` (nothing changed) if the resulting floors
    would let a face too poor to identify start a person.

    The audit entry is published before the overrides are stored, so no change escapes the audit chain; if
    storing then fails, the caller repeats the request."""
    policy = check_policy(effective_policy(ports.settings.default_policy, overrides))
    before = ports.tenant_settings.overrides(tenant_id)
    audit = AuditEntryRecorded(
        tenant_id=tenant_id,
        service=SERVICE,
        action=SETTINGS_CHANGED,
        actor=actor,
        resource="settings/matcher",
        details={
            "before": before.model_dump(exclude_none=True),
            "after": overrides.model_dump(exclude_none=True),
        },
    )
    await ports.publish(subjects.audit_entry(SERVICE, SETTINGS_CHANGED, tenant_id), audit)
    await ports.tenant_settings.replace(tenant_id, overrides)
    log.info("tenant_settings_changed", tenant_id=tenant_id, **overrides.model_dump(exclude_none=True))
    return policy


async def _kind_of(store: FaceVectorStore, tenant_id: str, person_id: uuid.UUID) -> PersonKind | None:
    """The kind of a person's stored vectors; None when it has none (the moved rows keep their own)."""
    located = await store.vectors_of_persons(tenant_id, [person_id], with_vectors=False)
    return next((row.kind for part in located for row in part.rows), None)


def _count(located: Sequence[CollectionRows]) -> int:
    return sum(len(part.rows) for part in located)


async def _complete_step(
    tenant_id: str, operation_id: uuid.UUID, person_id: uuid.UUID, action: str, result: StepResult, ports: MatcherPorts
) -> OperationStepCompleted:
    """Audit the step and announce it; both ids and contents derive from the operation and its recorded
    result, so a repeated step publishes identical events (JetStream and identity drop the copies)."""
    audit = AuditEntryRecorded(
        event_id=derive_event_id(operation_id, f"{SERVICE}/{STEP}/audit"),
        tenant_id=tenant_id,
        occurred_at=result.completed_at,
        service=SERVICE,
        action=action,
        actor=SERVICE,
        resource=f"person/{person_id}",
        details={"operation_id": str(operation_id), "vectors": result.changed},
    )
    await ports.publish(subjects.audit_entry(SERVICE, action, tenant_id), audit)
    completed = OperationStepCompleted(
        event_id=derive_event_id(operation_id, f"{SERVICE}/{STEP}"),
        tenant_id=tenant_id,
        occurred_at=result.completed_at,
        operation_id=operation_id,
        service=SERVICE,
        step=STEP,
        changed=result.changed,
    )
    await ports.publish(subjects.operation_step(SERVICE, tenant_id), completed)
    log.info("operation_step_completed", operation_id=str(operation_id), action=action, changed=result.changed)
    return completed


async def delete_unseen_vectors(policy: RetentionPolicyEntry, now: datetime, index: VectorIndex) -> dict[str, int]:
    """The matcher's retention for one tenant: delete every vector (every collection of the tenant's partition) of
    the persons whose newest vector was captured before `now - vectors_unseen_days`. Such a person seen again
    becomes a new person. Rows are deleted by primary key, so a re-run finds nothing left, and a vector a
    concurrent match adds meanwhile is not among them."""
    cutoff_ms = int((now - timedelta(days=policy.vectors_unseen_days)).timestamp() * 1000)
    located = await index.store.all_rows(policy.tenant_id)
    unseen = persons_unseen_since(
        ((row.person_id, row.captured_at_ms) for part in located for row in part.rows), cutoff_ms
    )
    expired = [CollectionRows(part.collection, [r for r in part.rows if r.person_id in unseen]) for part in located]
    await index.rewrite(policy.tenant_id, expired, delete=True)
    return {"vectors": sum(len(part.rows) for part in expired), "persons": len(unseen)}
