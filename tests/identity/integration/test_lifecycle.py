"""Identity's side of the person lifecycle, on real NATS, Postgres and S3: the API, identity's own step,
the facts it publishes, and operations advanced by the steps other services report (published here by
the test, as matcher, reporting and ingest would)."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import aioboto3
import httpx
import pytest
from nats.aio.client import Client as NatsClient

from schemas import (
    CropsErasureRequested,
    FaceMatched,
    OperationStepCompleted,
    PersonErased,
    PersonKind,
    PersonKindChanged,
    PersonsMarkedDifferent,
    PersonsMerged,
    PersonSplit,
    subjects,
)
from schemas.ids import derive_event_id
from services.common.bus import event_publisher
from services.identity import handlers
from services.identity.bootstrap import Identity
from tests.support import collect_messages, new_tenant
from tests.support_events import matched, publish_matched

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
BUCKET = "revisit-crops"
"""The settings' default bucket, which ingest writes and identity signs links to."""


@pytest.fixture
async def api(identity: Identity) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=identity.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://identity") as client:
        yield client


def as_role(make_token: Callable[..., str], tenant: str, role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {make_token(tenant, [role])}"}


def sightings_of(tenant: str, person: uuid.UUID, count: int, day: int = 0) -> list[FaceMatched]:
    events = [
        matched(tenant, person, T0 + timedelta(days=day, minutes=index), is_new=index == 0) for index in range(count)
    ]
    return [e.model_copy(update={"crop_key": f"{tenant}/store-1/2026/11/02/{e.source_event_id}.jpg"}) for e in events]


async def persons_recorded(api: httpx.AsyncClient, headers: dict[str, str], expected: dict[uuid.UUID, int]) -> None:
    """Wait until identity's consumer has recorded every expected person with its number of sightings."""
    for _ in range(100):
        items = (await api.get("/v1/persons", headers=headers)).json()["items"]
        if {uuid.UUID(p["person_id"]): p["sightings"] for p in items} == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"persons never became {expected}: {items}")


async def complete_steps(connection: NatsClient, tenant: str, operation_id: uuid.UUID, steps: list[str]) -> None:
    """What matcher, reporting and ingest publish when they have done their step."""
    js = connection.jetstream()
    for step in steps:
        service, name = step.split("/", 1)
        event = OperationStepCompleted(
            event_id=derive_event_id(operation_id, step),
            tenant_id=tenant,
            operation_id=operation_id,
            service=service,
            step=name,
            changed=1,
        )
        await js.publish(
            subjects.operation_step(service, tenant),
            event.to_json_bytes(),
            headers={"Nats-Msg-Id": str(event.event_id)},
        )


async def operation_status(api: httpx.AsyncClient, headers: dict[str, str], operation_id: str, wanted: str) -> dict:
    for _ in range(100):
        operation = (await api.get(f"/v1/operations/{operation_id}", headers=headers)).json()
        if operation["status"] == wanted:
            return operation
        await asyncio.sleep(0.1)
    raise AssertionError(f"operation never {wanted}: {operation}")


async def test_merge_then_undo_through_the_api(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin, viewer = as_role(make_token, tenant, "admin"), as_role(make_token, tenant, "viewer")
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bobs = sightings_of(tenant, bob, 2, day=1)
    await publish_matched(nats_connection, sightings_of(tenant, alice, 2) + bobs)
    await persons_recorded(api, admin, {alice: 2, bob: 2})

    assert (
        await api.post(f"/v1/persons/{alice}/merge", json={"person_ids": [str(bob)]}, headers=viewer)
    ).status_code == 403
    refused = await api.post(f"/v1/persons/{alice}/merge", json={"person_ids": [str(alice)]}, headers=admin)
    assert refused.status_code == 422 and "itself" in refused.json()["detail"]
    response = await api.post(f"/v1/persons/{alice}/merge", json={"person_ids": [str(bob)]}, headers=admin)
    assert response.status_code == 202 and response.json()["status"] == "running"
    operation_id = response.json()["operation_id"]

    [fact] = await collect_messages(nats_connection, f"identity.persons_merged.{tenant}", 1)
    merged = PersonsMerged.model_validate_json(fact.data)
    assert (merged.person_id, merged.merged_person_ids, str(merged.operation_id)) == (alice, [bob], operation_id)
    assert (await api.get(f"/v1/persons/{bob}", headers=viewer)).status_code == 404
    detail = (await api.get(f"/v1/persons/{alice}", headers=viewer)).json()
    assert detail["sighting_count"] == 4 and len(detail["sightings"]) == 4
    running = (await api.get(f"/v1/operations/{operation_id}", headers=viewer)).json()
    assert {(s["service"], s["status"]) for s in running["steps"]} == {
        ("identity", "completed"),
        ("matcher", "pending"),
        ("reporting", "pending"),
    }

    late = matched(tenant, bob, T0 + timedelta(days=2))  # in flight from the matcher when the merge ran
    await publish_matched(nats_connection, [late])
    await persons_recorded(api, admin, {alice: 5})

    await complete_steps(nats_connection, tenant, uuid.UUID(operation_id), ["matcher/vectors", "reporting/visits"])
    await operation_status(api, viewer, operation_id, "completed")

    undone = await api.post(f"/v1/operations/{operation_id}/undo", headers=admin)
    assert undone.status_code == 202
    [split_fact] = await collect_messages(nats_connection, f"identity.person_split.{tenant}", 1)
    split = PersonSplit.model_validate_json(split_fact.data)
    assert split.new_person_id == bob and set(split.sighting_ids) == {e.source_event_id for e in bobs}
    await persons_recorded(api, admin, {alice: 3, bob: 2})  # the late sighting stays with alice


async def test_split_makes_a_new_person_and_refuses_taking_every_sighting(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin = as_role(make_token, tenant, "admin")
    carol = uuid.uuid4()
    events = sightings_of(tenant, carol, 3)
    await publish_matched(nats_connection, events)
    await persons_recorded(api, admin, {carol: 3})

    every = {"sighting_ids": [str(e.source_event_id) for e in events]}
    assert (await api.post(f"/v1/persons/{carol}/split", json=every, headers=admin)).status_code == 422
    foreign = {"sighting_ids": [str(uuid.uuid4())]}
    assert (await api.post(f"/v1/persons/{carol}/split", json=foreign, headers=admin)).status_code == 422
    response = await api.post(
        f"/v1/persons/{carol}/split", json={"sighting_ids": [str(events[2].source_event_id)]}, headers=admin
    )
    assert response.status_code == 202
    operation = (await api.get(f"/v1/operations/{response.json()['operation_id']}", headers=admin)).json()
    new_person = uuid.UUID(operation["result"]["new_person_id"])
    await persons_recorded(api, admin, {carol: 2, new_person: 1})
    assert (
        (await api.get(f"/v1/persons/{new_person}", headers=admin))
        .json()["first_seen_at"]
        .startswith("2026-11-02T10:02")
    )


async def test_erasure_removes_the_person_names_its_crops_and_drops_late_sightings(
    identity: Identity,
    api: httpx.AsyncClient,
    nats_connection: NatsClient,
    make_token: Callable[..., str],
    s3_endpoint: str,
    s3_credentials: tuple[str, str],
) -> None:
    tenant = new_tenant()
    admin = as_role(make_token, tenant, "admin")
    dave = uuid.uuid4()
    events = sightings_of(tenant, dave, 2)
    session = aioboto3.Session(
        aws_access_key_id=s3_credentials[0], aws_secret_access_key=s3_credentials[1], region_name="us-east-1"
    )
    async with session.client("s3", endpoint_url=s3_endpoint) as s3:
        try:
            await s3.create_bucket(Bucket=BUCKET)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        for event in events:
            await s3.put_object(Bucket=BUCKET, Key=event.crop_key, Body=b"jpeg bytes")
    await publish_matched(nats_connection, events)
    await persons_recorded(api, admin, {dave: 2})
    detail = (await api.get(f"/v1/persons/{dave}", headers=admin)).json()
    async with httpx.AsyncClient() as browser:  # a presigned link loads with no token
        assert (await browser.get(detail["sightings"][0]["crop_url"])).content == b"jpeg bytes"
        assert (await browser.get(detail["thumbnail_url"])).status_code == 200

    response = await api.delete(f"/v1/persons/{dave}", headers=admin)
    assert response.status_code == 202
    operation_id = uuid.UUID(response.json()["operation_id"])
    [erased] = await collect_messages(nats_connection, f"identity.person_erased.{tenant}", 1)
    assert PersonErased.model_validate_json(erased.data).person_id == dave
    [crops] = await collect_messages(nats_connection, f"identity.crops_erasure_requested.{tenant}", 1)
    assert set(CropsErasureRequested.model_validate_json(crops.data).crop_keys) == {e.crop_key for e in events}
    assert (await api.get(f"/v1/persons/{dave}", headers=admin)).status_code == 404

    late = matched(tenant, dave, T0 + timedelta(days=3))  # in flight when the erasure ran: dropped
    await publish_matched(nats_connection, [late])
    assert await identity.directory.record_sightings([late, late]) == [None, None]  # a batch of only those too
    await complete_steps(nats_connection, tenant, operation_id, ["matcher/vectors", "reporting/visits"])
    operation = (await api.get(f"/v1/operations/{operation_id}", headers=admin)).json()
    assert operation["status"] == "running"  # ingest has not erased the crops yet
    await complete_steps(nats_connection, tenant, operation_id, ["ingest/crops/0"])
    await operation_status(api, admin, str(operation_id), "completed")
    assert (await api.get("/v1/persons", headers=admin)).json()["items"] == []

    audit = await collect_messages(nats_connection, f"audit.identity.*.{tenant}", 10, timeout=3)
    actions = [a.subject.split(".")[2] for a in audit]
    assert actions.count("erasure_requested") == 1 and actions.count("operation_completed") == 1
    assert not any(b"jpeg" in a.data or b".jpg" in a.data for a in audit)  # no crop, no key in the audit


async def test_an_operation_whose_events_were_never_published_is_resumed(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    """Identity committed the merge and died before publishing: the resume loop publishes its events."""
    tenant = new_tenant()
    admin = as_role(make_token, tenant, "admin")
    erin, frank = uuid.uuid4(), uuid.uuid4()
    await publish_matched(nats_connection, sightings_of(tenant, erin, 1) + sightings_of(tenant, frank, 1))
    await persons_recorded(api, admin, {erin: 1, frank: 1})

    async def dies(subject: str, event: object) -> None:
        raise ConnectionError("killed before publishing")

    with pytest.raises(ConnectionError):
        await handlers.merge_persons(tenant, erin, [frank], "admin-test", identity.lifecycle, dies)
    assert await collect_messages(nats_connection, f"identity.persons_merged.{tenant}", 1, timeout=1) == []
    await handlers.resume_open_operations(identity.lifecycle, event_publisher(identity.broker, "identity"), 0)
    [fact] = await collect_messages(nats_connection, f"identity.persons_merged.{tenant}", 1)
    assert PersonsMerged.model_validate_json(fact.data).merged_person_ids == [frank]


async def test_not_same_is_announced_once_and_refused_for_one_person(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin = as_role(make_token, tenant, "admin")
    gina, hank = uuid.uuid4(), uuid.uuid4()
    await publish_matched(nats_connection, sightings_of(tenant, gina, 1) + sightings_of(tenant, hank, 1))
    await persons_recorded(api, admin, {gina: 1, hank: 1})
    for _ in range(2):
        response = await api.post(f"/v1/persons/{gina}/not-same", json={"person_id": str(hank)}, headers=admin)
        assert response.status_code == 200
    assert (
        await api.post(f"/v1/persons/{gina}/not-same", json={"person_id": str(gina)}, headers=admin)
    ).status_code == 422
    missing = await api.post(f"/v1/persons/{gina}/not-same", json={"person_id": str(uuid.uuid4())}, headers=admin)
    assert missing.status_code == 404
    facts = await collect_messages(nats_connection, f"identity.persons_marked_different.{tenant}", 2, timeout=3)
    assert len(facts) == 1
    fact = PersonsMarkedDifferent.model_validate_json(facts[0].data)
    assert {fact.person_id, fact.other_person_id} == {gina, hank}


async def test_persons_are_paged_with_a_cursor(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    viewer = as_role(make_token, tenant, "viewer")
    people = [uuid.uuid4() for _ in range(5)]
    await publish_matched(nats_connection, [e for day, p in enumerate(people) for e in sightings_of(tenant, p, 1, day)])
    await persons_recorded(api, viewer, dict.fromkeys(people, 1))
    seen, cursor = [], None
    while True:
        page = (
            await api.get("/v1/persons", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=viewer)
        ).json()
        seen += [uuid.UUID(p["person_id"]) for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(people))  # most recently seen first, each once
    assert (await api.get("/v1/persons", params={"cursor": "not-a-cursor"}, headers=viewer)).status_code == 400


async def test_staff_suggestions_are_persons_seen_most_working_days_for_hours(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    analyst = as_role(make_token, tenant, "analyst")
    clerk, regular, passer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    events = []
    for back in range(1, 6):  # five working days
        morning = today - timedelta(days=back)
        events += [matched(tenant, clerk, morning), matched(tenant, clerk, morning + timedelta(hours=7))]
        events += [matched(tenant, regular, morning), matched(tenant, regular, morning + timedelta(minutes=20))]
    events.append(matched(tenant, passer, today - timedelta(days=2)))
    await publish_matched(nats_connection, events)
    await persons_recorded(api, analyst, {clerk: 10, regular: 10, passer: 1})
    items = (await api.get("/v1/persons/staff-suggestions", headers=analyst)).json()["items"]
    assert [(i["person_id"], i["days_seen"], i["working_days"]) for i in items] == [(str(clerk), 5, 5)]
    assert items[0]["median_hours_per_day"] == 7.0


async def test_a_person_takes_part_in_one_running_operation_and_an_undo_splits_one_person_at_a_time(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin = as_role(make_token, tenant, "admin")
    ivy, jack, kim = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish_matched(
        nats_connection,
        sightings_of(tenant, ivy, 2) + sightings_of(tenant, jack, 2, 1) + sightings_of(tenant, kim, 2, 2),
    )
    await persons_recorded(api, admin, {ivy: 2, jack: 2, kim: 2})
    merge = (
        await api.post(f"/v1/persons/{ivy}/merge", json={"person_ids": [str(jack), str(kim)]}, headers=admin)
    ).json()
    busy = await api.delete(f"/v1/persons/{ivy}", headers=admin)
    assert busy.status_code == 409 and merge["operation_id"] in busy.json()["detail"]
    await complete_steps(
        nats_connection, tenant, uuid.UUID(merge["operation_id"]), ["matcher/vectors", "reporting/visits"]
    )
    await operation_status(api, admin, merge["operation_id"], "completed")

    first = (await api.post(f"/v1/operations/{merge['operation_id']}/undo", headers=admin)).json()
    assert len(await collect_messages(nats_connection, f"identity.person_split.{tenant}", 2, timeout=2)) == 1
    await complete_steps(
        nats_connection, tenant, uuid.UUID(first["operation_id"]), ["matcher/vectors", "reporting/visits"]
    )
    facts = await collect_messages(nats_connection, f"identity.person_split.{tenant}", 2)  # the next split started
    second = PersonSplit.model_validate_json(facts[1].data)
    assert {PersonSplit.model_validate_json(f.data).new_person_id for f in facts} == {jack, kim}
    await complete_steps(nats_connection, tenant, second.operation_id, ["matcher/vectors", "reporting/visits"])
    await operation_status(api, admin, str(second.operation_id), "completed")
    await persons_recorded(api, admin, {ivy: 2, jack: 2, kim: 2})


async def test_marking_a_person_staff_is_an_operation_the_matcher_and_reporting_complete(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin = as_role(make_token, tenant, "admin")
    lena = uuid.uuid4()
    await publish_matched(nats_connection, sightings_of(tenant, lena, 2))
    await persons_recorded(api, admin, {lena: 2})
    assert (await api.put(f"/v1/persons/{lena}/kind", json={"kind": "boss"}, headers=admin)).status_code == 422
    response = await api.put(f"/v1/persons/{lena}/kind", json={"kind": "staff"}, headers=admin)
    assert response.status_code == 202
    [fact] = await collect_messages(nats_connection, f"identity.person_kind_changed.{tenant}", 1)
    changed = PersonKindChanged.model_validate_json(fact.data)
    assert (changed.person_id, changed.kind) == (lena, PersonKind.STAFF)
    assert (await api.get(f"/v1/persons/{lena}", headers=admin)).json()["kind"] == "staff"
    await publish_matched(nats_connection, [matched(tenant, lena, T0 + timedelta(days=4))])  # a customer-kind face
    await persons_recorded(api, admin, {lena: 3})
    assert (await api.get(f"/v1/persons/{lena}", headers=admin)).json()["kind"] == "staff"  # the operator's mark wins
    await complete_steps(nats_connection, tenant, changed.operation_id, ["matcher/vectors", "reporting/visits"])
    await operation_status(api, admin, str(changed.operation_id), "completed")


async def test_a_matched_face_redelivered_under_a_new_message_id_is_recorded_once(
    identity: Identity, api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    """The copy reaches identity's consumer (JetStream would drop a same-id copy): its own idempotency holds."""
    tenant = new_tenant()
    admin = as_role(make_token, tenant, "admin")
    mona = uuid.uuid4()
    [first] = sightings_of(tenant, mona, 1)
    await publish_matched(nats_connection, [first])
    await persons_recorded(api, admin, {mona: 1})
    js = nats_connection.jetstream()
    ack = await js.publish(
        subjects.face_matched(tenant, first.site_id),
        first.to_json_bytes(),
        headers={"Nats-Msg-Id": f"replayed-{first.event_id}"},
    )
    assert not ack.duplicate
    await publish_matched(nats_connection, sightings_of(tenant, mona, 1, day=1))  # a marker behind the copy
    await persons_recorded(api, admin, {mona: 2})
    await asyncio.sleep(1)  # consumers run in parallel: the copy may come after the marker
    await persons_recorded(api, admin, {mona: 2})
    created = await collect_messages(nats_connection, f"identity.person_created.{tenant}", 2, timeout=2)
    assert len(created) == 1
