"""Identity's handlers."""

from schemas import FaceMatched, PersonCreated, subjects
from schemas.ids import derive_event_id
from services.common.bus import EventPublisher
from services.identity.adapters.postgres import PersonDirectory


async def record_person(event: FaceMatched, directory: PersonDirectory, publish: EventPublisher) -> bool:
    """Record the sighting's person; announce PersonCreated if this event created it (again on redelivery,
    with the same event id, so a crash between commit and publish loses nothing). Returns whether it did."""
    person = await directory.record_sighting(event)
    if person.created_by_event != event.event_id:
        return False
    created = PersonCreated(
        event_id=derive_event_id(person.person_id, "person_created"),
        tenant_id=event.tenant_id,
        person_id=person.person_id,
        person_kind=person.kind,
        first_site_id=person.first_site_id,
        first_seen_at=person.first_seen_at,
    )
    await publish(subjects.identity_event("person_created", event.tenant_id), created)
    return True
