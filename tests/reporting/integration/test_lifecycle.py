"""Reporting's step of the person lifecycle on real NATS JetStream and Postgres: merge, split and erasure of
persons, marking a person staff and a customer again, redelivered facts, and sightings that arrive after the
operation."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from schemas import (
    AuditEntryRecorded,
    Event,
    FaceMatched,
    OperationStepCompleted,
    PersonErased,
    PersonKind,
    PersonKindChanged,
    PersonsMerged,
    PersonSplit,
    VisitRecord,
    VisitRemoved,
    subjects,
)
from schemas.ids import new_event_id
from services.reporting.adapters.postgres import OwnerChanged
from services.reporting.bootstrap import Reporting
from services.reporting.domain.visits import VisitRules
from tests.reporting.integration.conftest import SiteTenant
from tests.support_events import matched, publish_matched

DAY1 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
Fact = PersonsMerged | PersonSplit | PersonErased | PersonKindChanged
FACT_SUBJECTS = {
    PersonsMerged: "persons_merged",
    PersonSplit: "person_split",
    PersonErased: "person_erased",
    PersonKindChanged: "person_kind_changed",
}


@dataclass
class Announcements:
    """Everything reporting publishes for one tenant, as core NATS sees it: every publish, including the
    copies JetStream drops as duplicates, so a redelivery's re-announcements can be compared byte for byte."""

    messages: list[Msg] = field(default_factory=list)

    def take(self) -> list[Msg]:
        taken, self.messages = self.messages, []
        return taken

    def steps(self) -> list[OperationStepCompleted]:
        return [
            OperationStepCompleted.model_validate_json(m.data)
            for m in self.messages
            if m.subject.startswith("operations.")
        ]

    async def wait_step(self, operation_id: uuid.UUID, timeout: float = 20) -> OperationStepCompleted:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for step in self.steps():
                if step.operation_id == operation_id:
                    return step
            await asyncio.sleep(0.05)
        raise AssertionError(f"no OperationStepCompleted for {operation_id}")


@pytest.fixture
async def tenant(site_tenant: SiteTenant) -> str:
    return await site_tenant()


@pytest.fixture
async def announced(nats_connection: NatsClient, tenant: str) -> AsyncIterator[Announcements]:
    found = Announcements()

    async def keep(message: Msg) -> None:
        found.messages.append(message)

    subscriptions = [
        await nats_connection.subscribe(subject, cb=keep)
        for subject in (f"visits.{tenant}.>", f"operations.reporting.{tenant}", f"audit.reporting.*.{tenant}")
    ]
    yield found
    for subscription in subscriptions:
        await subscription.unsubscribe()


def handled(family: str) -> float:
    """Messages of a subject family reporting's handlers finished without error (this process's metric)."""
    labels = {"service": "reporting", "subject_family": family, "outcome": "ok"}
    return REGISTRY.get_sample_value("revisit_messages_consumed_total", labels) or 0.0


async def wait_handled(family: str, count: float, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while handled(family) < count and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert handled(family) == count


async def publish_fact(connection: NatsClient, fact: Fact, message_id: str = "") -> None:
    """Publish as identity would (message id = event id), or again under a new message id: a redelivery
    that JetStream keeps, so the consumer really gets the fact twice."""
    ack = await connection.jetstream().publish(
        subjects.identity_event(FACT_SUBJECTS[type(fact)], fact.tenant_id),
        fact.to_json_bytes(),
        headers={"Nats-Msg-Id": message_id or str(fact.event_id)},
    )
    assert not ack.duplicate


async def redeliver(connection: NatsClient, fact: Fact, announced: Announcements) -> list[Msg]:
    """The same fact under a new message id; what reporting published again for it."""
    family = f"identity.{FACT_SUBJECTS[type(fact)]}"
    before = handled(family)
    announced.take()
    await publish_fact(connection, fact, message_id=f"replayed-{fact.event_id}")
    await wait_handled(family, before + 1)
    await announced.wait_step(fact.operation_id)
    return announced.take()


async def get(reporting: Reporting, token: str, path: str) -> Any:
    transport = httpx.ASGITransport(app=reporting.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
        query = {"site_id": "store-1", "from": "2026-11-01", "to": "2026-11-05"}
        response = await client.get(path, params=query, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def visits_by_person(reporting: Reporting, token: str) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for visit in (await get(reporting, token, "/v1/visits"))["items"]:
        person = uuid.UUID(visit["person_id"])
        counts[person] = counts.get(person, 0) + 1
    return counts


async def wait_for_visits(reporting: Reporting, token: str, visits: int, timeout: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        totals: dict[str, Any] = (await get(reporting, token, "/v1/reports/visitors"))["totals"]
        if totals["visits"] == visits or asyncio.get_running_loop().time() > deadline:
            return totals
        await asyncio.sleep(0.1)


def events_of(messages: list[Msg], model: type[Event]) -> list[Any]:
    name = model.model_fields["schema_name"].default
    return [model.model_validate_json(m.data) for m in messages if f'"schema":"{name}"' in m.data.decode()]


async def stored_steps(connection: NatsClient, tenant: str) -> list[OperationStepCompleted]:
    """What the OPERATIONS stream kept of reporting's steps for this tenant (duplicates are dropped there)."""
    subscription = await connection.jetstream().pull_subscribe(
        subjects.operation_step("reporting", tenant), durable=None
    )
    kept: list[OperationStepCompleted] = []
    try:
        while True:
            batch = await subscription.fetch(100, timeout=1)
            kept += [OperationStepCompleted.model_validate_json(m.data) for m in batch]
    except TimeoutError:
        return kept
    finally:
        await subscription.unsubscribe()


async def test_merge_split_erase_with_redelivered_facts(
    reporting: Reporting,
    nats_connection: NatsClient,
    make_token: Callable[..., str],
    tenant: str,
    announced: Announcements,
) -> None:
    a, b, c, d, e = persons = [uuid.uuid4() for _ in range(5)]
    sightings = {
        person: [matched(tenant, person, DAY1 + timedelta(hours=i)), matched(tenant, person, DAY2 + timedelta(hours=i))]
        for i, person in enumerate(persons)
    }
    await publish_matched(nats_connection, [event for pair in sightings.values() for event in pair])
    token = make_token(tenant, ["analyst"])
    assert (await wait_for_visits(reporting, token, 10))["unique_visitors"] == 5
    await asyncio.sleep(0.3)
    announced.take()

    # merge B into A: A has B's visits too, and only A's first visit is new
    merge = PersonsMerged(tenant_id=tenant, operation_id=new_event_id(), person_id=a, merged_person_ids=[b])
    await publish_fact(nats_connection, merge)
    assert (await announced.wait_step(merge.operation_id)).changed == 2
    first = announced.take()
    totals = await wait_for_visits(reporting, token, 10)
    assert (totals["unique_visitors"], totals["new_visitors"], totals["returning_visits"]) == (4, 4, 6)
    assert await visits_by_person(reporting, token) == {a: 4, c: 2, d: 2, e: 2}
    records = events_of(first, VisitRecord)
    assert {r.person_id for r in records} == {a} and len(records) == 2  # B's two visits, now A's and returning
    assert all(r.is_returning for r in records) and events_of(first, VisitRemoved) == []
    assert [m.data for m in await redeliver(nats_connection, merge, announced)] == [m.data for m in first]
    assert await visits_by_person(reporting, token) == {a: 4, c: 2, d: 2, e: 2}

    # split B's sightings back out of A: B's first visit is new again
    split = PersonSplit(
        tenant_id=tenant,
        operation_id=new_event_id(),
        person_id=a,
        new_person_id=b,
        sighting_ids=[event.source_event_id for event in sightings[b]],
    )
    await publish_fact(nats_connection, split)
    assert (await announced.wait_step(split.operation_id)).changed == 2
    first = announced.take()
    totals = await wait_for_visits(reporting, token, 10)
    assert (totals["unique_visitors"], totals["new_visitors"], totals["returning_visits"]) == (5, 5, 5)
    assert await visits_by_person(reporting, token) == {a: 2, b: 2, c: 2, d: 2, e: 2}
    assert {(r.person_id, r.is_returning) for r in events_of(first, VisitRecord)} == {(b, False), (b, True)}
    assert [m.data for m in await redeliver(nats_connection, split, announced)] == [m.data for m in first]

    # erase C: its visits are gone and announced as removed
    erase = PersonErased(tenant_id=tenant, operation_id=new_event_id(), person_id=c)
    await publish_fact(nats_connection, erase)
    assert (await announced.wait_step(erase.operation_id)).changed == 2
    first = announced.take()
    totals = await wait_for_visits(reporting, token, 8)
    assert (totals["visits"], totals["unique_visitors"]) == (8, 4)
    assert await visits_by_person(reporting, token) == {a: 2, b: 2, d: 2, e: 2}
    removed = events_of(first, VisitRemoved)
    assert len(removed) == 2 and {r.person_id for r in removed} == {c} and events_of(first, VisitRecord) == []
    audit = events_of(first, AuditEntryRecorded)
    assert [(x.resource, x.details["sightings_changed"]) for x in audit] == [(f"person/{c}", 2)]
    assert [m.data for m in await redeliver(nats_connection, erase, announced)] == [m.data for m in first]

    steps = await stored_steps(nats_connection, tenant)
    assert sorted(s.operation_id for s in steps) == sorted([merge.operation_id, split.operation_id, erase.operation_id])
    assert {(s.service, s.step) for s in steps} == {("reporting", "visits")}


async def test_late_sightings_of_merged_and_erased_persons(
    reporting: Reporting,
    nats_connection: NatsClient,
    make_token: Callable[..., str],
    tenant: str,
    announced: Announcements,
) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish_matched(
        nats_connection,
        [matched(tenant, a, DAY1), matched(tenant, b, DAY1 + timedelta(minutes=10)), matched(tenant, c, DAY2)],
    )
    token = make_token(tenant, ["analyst"])
    await wait_for_visits(reporting, token, 3)
    merge = PersonsMerged(tenant_id=tenant, operation_id=new_event_id(), person_id=a, merged_person_ids=[b])
    erase = PersonErased(tenant_id=tenant, operation_id=new_event_id(), person_id=c)
    for fact in (merge, erase):
        await publish_fact(nats_connection, fact)
        await announced.wait_step(fact.operation_id)
    # B's visit joined A's (ten minutes apart): it no longer exists
    assert [r.person_id for r in events_of(announced.messages, VisitRemoved)] == [b, c]

    late = [matched(tenant, b, DAY1 + timedelta(minutes=20)), matched(tenant, c, DAY2 + timedelta(minutes=5))]
    before = handled("faces.matched")
    await publish_matched(nats_connection, late)
    await wait_handled("faces.matched", before + 2)
    visits = (await get(reporting, token, "/v1/visits"))["items"]
    assert [(uuid.UUID(v["person_id"]), v["sightings"]) for v in visits] == [(a, 3)]

    # a sighting of a person merged into one erased later is dropped as well
    erase_a = PersonErased(tenant_id=tenant, operation_id=new_event_id(), person_id=a)
    await publish_fact(nats_connection, erase_a)
    await announced.wait_step(erase_a.operation_id)
    before = handled("faces.matched")
    await publish_matched(nats_connection, [matched(tenant, b, DAY2 + timedelta(hours=3))])
    await wait_handled("faces.matched", before + 1)
    assert (await get(reporting, token, "/v1/visits"))["items"] == []


async def test_a_sighting_split_off_before_it_arrived_lands_on_the_new_person(
    reporting: Reporting,
    nats_connection: NatsClient,
    make_token: Callable[..., str],
    tenant: str,
    announced: Announcements,
) -> None:
    a, newcomer = uuid.uuid4(), uuid.uuid4()
    here, in_flight = matched(tenant, a, DAY1), matched(tenant, a, DAY1 + timedelta(minutes=5))
    await publish_matched(nats_connection, [matched(tenant, a, DAY2), here])
    token = make_token(tenant, ["analyst"])
    await wait_for_visits(reporting, token, 2)
    split = PersonSplit(
        tenant_id=tenant,
        operation_id=new_event_id(),
        person_id=a,
        new_person_id=newcomer,
        sighting_ids=[here.source_event_id, in_flight.source_event_id],
    )
    await publish_fact(nats_connection, split)
    assert (await announced.wait_step(split.operation_id)).changed == 1
    before = handled("faces.matched")
    await publish_matched(nats_connection, [in_flight])  # the matcher still said A
    await wait_handled("faces.matched", before + 1)
    visits = (await get(reporting, token, "/v1/visits"))["items"]
    assert [(uuid.UUID(v["person_id"]), v["sightings"], v["is_returning"]) for v in visits] == [
        (newcomer, 2, False),
        (a, 1, False),
    ]


async def test_matched_face_redelivered_under_a_new_message_id_counts_once(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], tenant: str
) -> None:
    event: FaceMatched = matched(tenant, uuid.uuid4(), DAY1, is_new=True)
    before = handled("faces.matched")
    await publish_matched(nats_connection, [event])
    await nats_connection.jetstream().publish(
        subjects.face_matched(tenant, event.site_id), event.to_json_bytes(), headers={"Nats-Msg-Id": "replayed"}
    )
    await wait_handled("faces.matched", before + 2)
    visits = (await get(reporting, make_token(tenant, ["analyst"]), "/v1/visits"))["items"]
    assert [(v["person_id"], v["sightings"]) for v in visits] == [(str(event.person_id), 1)]


async def test_sightings_racing_a_merge_all_end_on_the_remaining_person(
    reporting: Reporting, make_token: Callable[..., str], tenant: str
) -> None:
    """Sightings of B recorded while B is merged into A: whichever commits first, none is left with B, and
    the per-person locks taken in one order never deadlock."""
    a, b = uuid.uuid4(), uuid.uuid4()
    rules = VisitRules(gap=timedelta(minutes=30), lookback=timedelta(days=90))
    store = reporting.store

    async def record(event: FaceMatched) -> None:
        while True:
            try:
                await store.record_sighting(event, rules)
                return
            except OwnerChanged:
                await asyncio.sleep(0.01)  # what the consumer's retry does, sooner

    await store.record_sighting(matched(tenant, b, DAY1), rules)
    late = [matched(tenant, b, DAY1 + timedelta(hours=i)) for i in range(1, 21)]
    merge = PersonsMerged(tenant_id=tenant, operation_id=new_event_id(), person_id=a, merged_person_ids=[b])
    await asyncio.gather(*(record(e) for e in late[:10]), store.merge_persons(merge, rules), *map(record, late[10:]))
    visits = (await get(reporting, make_token(tenant, ["analyst"]), "/v1/visits"))["items"]
    assert {v["person_id"] for v in visits} == {str(a)} and sum(v["sightings"] for v in visits) == 21


async def visit_ids_by_person(reporting: Reporting, token: str) -> dict[uuid.UUID, set[str]]:
    found: dict[uuid.UUID, set[str]] = {}
    for visit in (await get(reporting, token, "/v1/visits"))["items"]:
        found.setdefault(uuid.UUID(visit["person_id"]), set()).add(visit["visit_id"])
    return found


async def test_marking_a_person_staff_and_back_removes_and_restores_its_visits(
    reporting: Reporting,
    nats_connection: NatsClient,
    make_token: Callable[..., str],
    tenant: str,
    announced: Announcements,
) -> None:
    persons = [uuid.uuid4() for _ in range(5)]
    c = persons[2]
    await publish_matched(
        nats_connection,
        [matched(tenant, p, day + timedelta(hours=i)) for i, p in enumerate(persons) for day in (DAY1, DAY2)],
    )
    token = make_token(tenant, ["analyst"])
    totals = await wait_for_visits(reporting, token, 10)
    assert (totals["unique_visitors"], totals["returning_visits"]) == (5, 5)
    visits_before = (await get(reporting, token, "/v1/visits"))["items"]
    await asyncio.sleep(0.3)
    announced.take()

    # mark C staff: C's two visits leave every count and are announced as removed
    staff = PersonKindChanged(tenant_id=tenant, operation_id=new_event_id(), person_id=c, kind=PersonKind.STAFF)
    await publish_fact(nats_connection, staff)
    assert (await announced.wait_step(staff.operation_id)).changed == 2
    first = announced.take()
    totals = await wait_for_visits(reporting, token, 8)
    assert (totals["visits"], totals["unique_visitors"], totals["new_visitors"]) == (8, 4, 4)
    assert c not in await visit_ids_by_person(reporting, token)
    removed = events_of(first, VisitRemoved)
    assert {r.visit_id for r in removed} == {
        uuid.UUID(v["visit_id"]) for v in visits_before if v["person_id"] == str(c)
    }
    assert events_of(first, VisitRecord) == []
    [audit] = events_of(first, AuditEntryRecorded)
    assert (audit.action, audit.details["person_kind"], audit.details["visits_removed"]) == (
        "sightings_reattributed",
        "staff",
        2,
    )
    assert [m.data for m in await redeliver(nats_connection, staff, announced)] == [m.data for m in first]
    assert (await wait_for_visits(reporting, token, 8))["visits"] == 8

    # a customer again: the same visits come back (same ids, same returning flags), announced as records
    customer = PersonKindChanged(tenant_id=tenant, operation_id=new_event_id(), person_id=c, kind=PersonKind.CUSTOMER)
    await publish_fact(nats_connection, customer)
    assert (await announced.wait_step(customer.operation_id)).changed == 2
    first = announced.take()
    totals = await wait_for_visits(reporting, token, 10)
    assert (totals["unique_visitors"], totals["new_visitors"], totals["returning_visits"]) == (5, 5, 5)
    assert (await get(reporting, token, "/v1/visits"))["items"] == visits_before
    records = events_of(first, VisitRecord)
    assert {r.visit_id for r in records} == {r.visit_id for r in removed} and events_of(first, VisitRemoved) == []
    assert [m.data for m in await redeliver(nats_connection, customer, announced)] == [m.data for m in first]

    steps = await stored_steps(nats_connection, tenant)
    assert sorted(s.operation_id for s in steps) == sorted([staff.operation_id, customer.operation_id])


async def test_the_operators_mark_wins_over_the_kind_a_sighting_carries(
    reporting: Reporting,
    nats_connection: NatsClient,
    make_token: Callable[..., str],
    tenant: str,
    announced: Announcements,
) -> None:
    """A staff sighting of a never-marked person never counts; the matcher's (or edge's) kind of a later
    sighting does not override an operator: staff sightings of a person marked customer count, customer
    sightings of a person marked staff do not."""
    customer, staff_member, never_marked = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    before = handled("faces.matched")
    await publish_matched(
        nats_connection,
        [
            matched(tenant, customer, DAY1, kind=PersonKind.STAFF),
            matched(tenant, staff_member, DAY1),
            matched(tenant, never_marked, DAY1, kind=PersonKind.STAFF),
        ],
    )
    await wait_handled("faces.matched", before + 3)
    token = make_token(tenant, ["analyst"])
    assert await visits_by_person(reporting, token) == {staff_member: 1}

    marks = [
        PersonKindChanged(tenant_id=tenant, operation_id=new_event_id(), person_id=customer, kind=PersonKind.CUSTOMER),
        PersonKindChanged(tenant_id=tenant, operation_id=new_event_id(), person_id=staff_member, kind=PersonKind.STAFF),
    ]
    for mark in marks:
        await publish_fact(nats_connection, mark)
        assert (await announced.wait_step(mark.operation_id)).changed == 1
    assert await visits_by_person(reporting, token) == {customer: 1}

    before = handled("faces.matched")
    await publish_matched(
        nats_connection,
        [
            matched(tenant, customer, DAY2, kind=PersonKind.STAFF),
            matched(tenant, staff_member, DAY2),
            matched(tenant, never_marked, DAY2, kind=PersonKind.STAFF),
        ],
    )
    await wait_handled("faces.matched", before + 3)
    assert await visits_by_person(reporting, token) == {customer: 2}
    totals = await wait_for_visits(reporting, token, 2)
    assert (totals["unique_visitors"], totals["returning_visits"]) == (1, 1)
