"""Identity against real NATS JetStream and Postgres."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from nats.aio.client import Client as NatsClient

from schemas import PersonCreated, subjects
from services.identity.bootstrap import Identity
from tests.support import collect_messages, new_tenant
from tests.support_events import matched, publish_matched

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


async def test_each_person_is_created_once(
    identity: Identity, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    dana, eve = uuid.uuid4(), uuid.uuid4()
    first = matched(tenant, dana, T0 + timedelta(minutes=5), is_new=True)
    events = [
        first,
        matched(tenant, dana, T0),
        matched(tenant, dana, T0 + timedelta(days=1)),
        matched(tenant, eve, T0, is_new=True),
    ]
    await publish_matched(nats_connection, events)
    await publish_matched(nats_connection, [first])  # duplicate
    created = await collect_messages(nats_connection, f"identity.person_created.{tenant}", 3, timeout=5)
    assert sorted(str(PersonCreated.model_validate_json(m.data).person_id) for m in created) == sorted(
        [str(dana), str(eve)]
    )
    transport = httpx.ASGITransport(app=identity.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://identity") as client:
        for _ in range(50):
            persons = (
                await client.get("/v1/persons", headers={"authorization": f"Bearer {make_token(tenant, ['admin'])}"})
            ).json()["items"]
            if any(p["last_seen_at"].startswith("2026-11-03") for p in persons):
                break
            await asyncio.sleep(0.2)
    by_id = {p["person_id"]: p for p in persons}
    assert by_id[str(dana)]["first_seen_at"].startswith("2026-11-02T10:00")
    assert by_id[str(dana)]["last_seen_at"].startswith("2026-11-03T10:00")
    assert set(by_id) == {str(dana), str(eve)}


async def test_a_sighting_redelivered_under_a_new_msg_id_is_counted_once(
    identity: Identity, nats_connection: NatsClient
) -> None:
    """The same FaceMatched twice under different Nats-Msg-Ids (JetStream keeps both), in one batch or two:
    one sighting, one PersonCreated."""
    tenant = new_tenant()
    person = uuid.uuid4()
    first, second = matched(tenant, person, T0, is_new=True), matched(tenant, person, T0 + timedelta(minutes=1))
    js = nats_connection.jetstream()
    for event in [first, second, first, first]:
        await js.publish(
            subjects.face_matched(tenant, event.site_id),
            event.to_json_bytes(),
            headers={"Nats-Msg-Id": str(uuid.uuid4())},
        )
    await publish_matched(nats_connection, [second])
    created = await collect_messages(nats_connection, f"identity.person_created.{tenant}", 2, timeout=5)
    assert [PersonCreated.model_validate_json(m.data).person_id for m in created] == [person]
    js = nats_connection.jetstream()
    for _ in range(100):  # until the consumer has settled every copy
        info = await js.consumer_info("FACES", "identity")
        if not info.num_pending and not info.num_ack_pending:
            break
        await asyncio.sleep(0.1)
    stored = await identity.directory.get_person(tenant, person)
    assert stored is not None and stored.sightings == 2
    assert (stored.first_seen_at, stored.last_seen_at, stored.created_by_event) == (
        T0,
        second.captured_at,
        first.event_id,
    )
