"""Reporting's handlers."""

from schemas import FaceMatched, FaceUnidentified, PersonKind, VisitRecord, subjects
from schemas.ids import derive_event_id
from services.common.bus import EventPublisher
from services.common.logging import get_logger
from services.reporting.adapters.postgres import VisitStore
from services.reporting.domain.visits import Visit, VisitRules

log = get_logger(__name__)


async def record_visit(
    event: FaceMatched, store: VisitStore, rules: VisitRules, publish: EventPublisher
) -> list[VisitRecord]:
    """Fold a matched sighting into its person's visits and announce the visits that changed.
    Staff are never visitors: their sightings are acknowledged and not counted."""
    if event.person_kind is PersonKind.STAFF:
        return []
    changed = await store.record_sighting(event, rules)
    records = [visit_record(event, visit) for visit in changed]
    for record in records:
        await publish(subjects.visit_record(event.tenant_id, event.site_id), record)
    log.info("sighting_recorded", person_id=str(event.person_id), changed_visits=len(records))
    return records


async def record_unidentified_sighting(event: FaceUnidentified, store: VisitStore) -> bool:
    """Count a sighting the matcher could not identify; a redelivered one (same event id) is counted once.
    It belongs to nobody, so it touches no visit."""
    recorded = await store.record_unidentified(event)
    log.info("unidentified_sighting_recorded", duplicate=not recorded)
    return recorded


def visit_record(event: FaceMatched, visit: Visit) -> VisitRecord:
    """The event id is derived from the visit's state, so re-announcing an unchanged visit is deduplicated."""
    state = f"{visit.started_at.isoformat()}|{visit.last_seen_at.isoformat()}|{visit.sightings}|{visit.is_returning}"
    return VisitRecord(
        event_id=derive_event_id(visit.visit_id, state),
        tenant_id=event.tenant_id,
        visit_id=visit.visit_id,
        site_id=event.site_id,
        person_id=event.person_id,
        started_at=visit.started_at,
        last_seen_at=visit.last_seen_at,
        sightings=visit.sightings,
        is_returning=visit.is_returning,
    )
