"""Matcher's handlers: faces good enough to recognise are assigned to persons (FaceMatched); the others are
counted as unidentified sightings (FaceUnidentified) and never become persons.

Two floors on the edge's quality: below `identify_min_quality` a face is not even searched; below
`enrol_min_quality` it may join a person it matches but never starts one nor adds a vector (see
`domain.assignment`)."""

import uuid
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from schemas import FaceIngested, FaceMatched, FaceUnidentified, subjects
from schemas.ids import derive_event_id, new_event_id
from services.common.bus import EventPublisher, InvalidEvent
from services.common.logging import get_logger
from services.common.metrics import UNIDENTIFIED_SIGHTINGS
from services.matcher.adapters.milvus import DimensionMismatch, FaceVectorStore, StoredVector
from services.matcher.adapters.person_lock import PersonCreationLease
from services.matcher.config import MatcherSettings
from services.matcher.domain.assignment import Assignment, assign_batch, normalize
from services.matcher.domain.quality_floor import identifiable_indexes

log = get_logger(__name__)
MatchOutcome = FaceMatched | FaceUnidentified


async def identify_faces(
    events: Sequence[FaceIngested],
    settings: MatcherSettings,
    store: FaceVectorStore,
    lease: PersonCreationLease,
    publish: EventPublisher,
) -> list[MatchOutcome]:
    """Match the faces good enough to recognise; the others are unidentified sightings, never searched,
    stored or made persons. Every outcome is published; results in input order."""
    identifiable = identifiable_indexes([event.quality for event in events], settings.identify_min_quality)
    results: dict[int, MatchOutcome] = {}
    if identifiable:
        matched = await match_faces([events[i] for i in identifiable], settings, store, lease, publish)
        results.update(zip(identifiable, matched, strict=True))
    below_floor = [index for index in range(len(events)) if index not in results]
    for index in below_floor:
        results[index] = unidentified_event(events[index])
        await _publish(publish, results[index])
    UNIDENTIFIED_SIGHTINGS.inc(len(below_floor))
    if below_floor:
        log.info("faces_unidentified", batch=len(events), below_identify_floor=len(below_floor))
    return [results[i] for i in range(len(events))]


async def match_faces(
    events: Sequence[FaceIngested],
    settings: MatcherSettings,
    store: FaceVectorStore,
    lease: PersonCreationLease,
    publish: EventPublisher,
) -> list[MatchOutcome]:
    """Match `events` (any mix of tenants and models) with one search per tenant and model; results in input order.
    Each event becomes a person's sighting, or an unidentified one if it is below the enrolment floor and
    matches nobody. Callers pass only identifiable faces (`identify_faces` does)."""
    groups: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        groups[(event.tenant_id, event.embedding_model, len(event.embedding))].append(index)
    results: dict[int, MatchOutcome] = {}
    for (tenant_id, model, dim), indexes in groups.items():
        group = [events[i] for i in indexes]
        try:
            async with lease.hold(tenant_id, model):  # no other replica creates persons of this tenant meanwhile
                matched = await _match_group(tenant_id, model, dim, group, settings, store)
        except DimensionMismatch as error:
            raise InvalidEvent(str(error)) from error
        results.update(zip(indexes, matched, strict=True))
    ordered = [results[i] for i in range(len(events))]
    for outcome in ordered:
        await _publish(publish, outcome)
    matched_faces = [outcome for outcome in ordered if isinstance(outcome, FaceMatched)]
    not_enrolled = len(ordered) - len(matched_faces)
    UNIDENTIFIED_SIGHTINGS.inc(not_enrolled)
    log.info(
        "faces_matched",
        batch=len(ordered),
        new_persons=sum(m.is_new_person for m in matched_faces),
        unmatched_below_enrol_floor=not_enrolled,
    )
    return ordered


async def _publish(publish: EventPublisher, outcome: MatchOutcome) -> None:
    if isinstance(outcome, FaceMatched):
        await publish(subjects.face_matched(outcome.tenant_id, outcome.site_id), outcome)
    else:
        await publish(subjects.face_unidentified(outcome.tenant_id, outcome.site_id), outcome)


async def _match_group(
    tenant_id: str, model: str, dim: int, events: list[FaceIngested], settings: MatcherSettings, store: FaceVectorStore
) -> list[MatchOutcome]:
    known = await store.find_sightings(model, dim, tenant_id, [event.event_id for event in events])
    fresh = [event for event in events if event.event_id not in known]
    assignments: dict[uuid.UUID, Assignment | None] = {}
    if fresh:
        vectors = normalize(np.asarray([event.embedding for event in fresh], dtype=np.float32))
        best = await store.best_candidates(model, dim, tenant_id, vectors.tolist())
        matched_persons = [candidate.person_id for candidate in best if candidate is not None]
        counts = await store.count_vectors(model, dim, tenant_id, matched_persons)
        decided = assign_batch(
            vectors,
            best,
            counts,
            settings.match_threshold,
            settings.max_vectors_per_person,
            settings.duplicate_vector_similarity,
            new_event_id,
            [event.quality >= settings.enrol_min_quality for event in fresh],
        )
        assignments = {event.event_id: assignment for event, assignment in zip(fresh, decided, strict=True)}
        await store.insert(
            model,
            dim,
            [
                StoredVector(
                    event.event_id,
                    assignment.person_id,
                    tenant_id,
                    assignment.kind,
                    int(event.captured_at.timestamp() * 1000),
                    vector.tolist(),
                )
                for event, assignment, vector in zip(fresh, decided, vectors, strict=True)
                if assignment is not None and assignment.keep_vector
            ],
        )
    return [_outcome(event, assignments.get(event.event_id), known.get(event.event_id)) for event in events]


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
        source_event_id=event.event_id,
        site_id=event.site_id,
        camera_id=event.camera_id,
        captured_at=event.captured_at,
        track_id=event.track_id,
        quality=event.quality,
        embedding_model=event.embedding_model,
        crop_key=event.crop_key,
    )
