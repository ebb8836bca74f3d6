"""Building matched-face and unidentified-sighting events for the tests of the services downstream of the matcher."""

import uuid
from datetime import datetime

from nats.aio.client import Client as NatsClient

from schemas import FaceMatched, FaceUnidentified, PersonKind, subjects
from schemas.ids import new_event_id


def matched(
    tenant: str,
    person: uuid.UUID,
    at: datetime,
    site: str = "store-1",
    kind: PersonKind = PersonKind.CUSTOMER,
    is_new: bool = False,
) -> FaceMatched:
    return FaceMatched(
        tenant_id=tenant,
        source_event_id=new_event_id(),
        site_id=site,
        camera_id="entrance",
        captured_at=at,
        person_id=person,
        person_kind=kind,
        is_new_person=is_new,
        similarity=None if is_new else 0.7,
        embedding_model="test-model@1",
    )


async def publish_matched(connection: NatsClient, events: list[FaceMatched]) -> None:
    js = connection.jetstream()
    for event in events:
        await js.publish(
            subjects.face_matched(event.tenant_id, event.site_id),
            event.to_json_bytes(),
            headers={"Nats-Msg-Id": str(event.event_id)},
        )


def unidentified(tenant: str, at: datetime, site: str = "store-1") -> FaceUnidentified:
    return FaceUnidentified(
        tenant_id=tenant,
        source_event_id=new_event_id(),
        site_id=site,
        camera_id="entrance",
        captured_at=at,
        track_id="entrance-1",
        quality=0.12,
        embedding_model="test-model@1",
    )
