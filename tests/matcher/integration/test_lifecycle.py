"""The matcher's step of the person lifecycle sagas, against real NATS JetStream and Milvus Lite: facts go
through the durable consumers, results are read from the streams and the vector store."""

import asyncio
import uuid
from dataclasses import replace

import numpy as np
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from schemas import (
    AuditEntryRecorded,
    FaceIngested,
    FaceMatched,
    OperationStepCompleted,
    PersonErased,
    PersonKind,
    PersonKindChanged,
    PersonsMerged,
    PersonSplit,
    subjects,
)
from schemas.base import Event
from schemas.ids import derive_event_id
from services.matcher.bootstrap import Matcher
from services.matcher.handlers import change_person_kind, match_faces, merge_persons
from tests.support import collect_messages, new_tenant
from tests.support_matcher import MODEL, ingested, matched_by_source, person_vectors, publish, publish_again

DIM = 128


class Wire:
    """Every message published on a subject from now on, as a core subscriber sees it: JetStream's duplicate
    filter drops a re-published event from the stream, not from the wire, so this shows what was re-published."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []

    async def handle(self, message: Msg) -> None:
        self.messages.append(message)


async def watch(connection: NatsClient, subject: str) -> Wire:
    wire = Wire()
    await connection.subscribe(subject, cb=wire.handle)
    await connection.flush()
    return wire


async def wait_for(wire: Wire, count: int, timeout: float = 20) -> list[Msg]:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(wire.messages) < count and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return wire.messages


async def publish_fact(connection: NatsClient, subject: str, event: Event) -> None:
    await connection.jetstream().publish(subject, event.to_json_bytes(), headers={"Nats-Msg-Id": str(event.event_id)})


async def stored_faces(matcher: Matcher, faces: list[np.ndarray], tenant: str) -> list[FaceMatched]:
    """One face per batch, so each one's vector is kept (a batch's later faces of a new person are not)."""
    results = []
    for face in faces:
        [outcome] = await match_faces([ingested(tenant, face)], matcher.ports)
        assert isinstance(outcome, FaceMatched)
        results.append(outcome)
    return results


async def step_done_twice(
    matcher: Matcher, connection: NatsClient, subject: str, fact: Event, operation_id: uuid.UUID
) -> OperationStepCompleted:
    """Publish the fact, wait for the step; publish the same fact again under a new Nats-Msg-Id and check the
    repeat re-announces the identical event (bytes), so the stream holds it once."""
    tenant = fact.tenant_id
    steps = await watch(connection, subjects.operation_step("matcher", tenant))
    await publish_fact(connection, subject, fact)
    [first] = await wait_for(steps, 1)
    await publish_again(connection, subject, fact)
    _, second = await wait_for(steps, 2)
    assert second.data == first.data
    on_stream = await collect_messages(connection, subjects.operation_step("matcher", tenant), 2, timeout=2)
    assert len(on_stream) == 1
    completed = OperationStepCompleted.model_validate_json(first.data)
    assert completed.event_id == derive_event_id(operation_id, "matcher/vectors")
    assert (completed.operation_id, completed.service, completed.step) == (operation_id, "matcher", "vectors")
    [audit_message] = await collect_messages(connection, f"audit.matcher.*.{tenant}", 2, timeout=2)
    audit = AuditEntryRecorded.model_validate_json(audit_message.data)
    assert audit.details == {"operation_id": str(operation_id), "vectors": completed.changed}
    assert (audit.service, audit.actor) == ("matcher", "matcher") and audit.resource.startswith("person/")
    return completed


async def test_merge_relabels_and_a_face_of_the_merged_person_then_matches_the_remaining_one(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    tenant = new_tenant()
    rng = np.random.default_rng(21)
    alice, bob = person_vectors(rng, 1, noise=0.5), person_vectors(rng, 3, noise=0.5)
    [a] = await stored_faces(matcher, [alice[0]], tenant)
    b0, b1 = await stored_faces(matcher, [bob[0], bob[1]], tenant)
    assert a.person_id != b0.person_id == b1.person_id
    operation = uuid.uuid4()
    merged = PersonsMerged(
        tenant_id=tenant, operation_id=operation, person_id=a.person_id, merged_person_ids=[b0.person_id]
    )

    completed = await step_done_twice(
        matcher, nats_connection, subjects.identity_event("persons_merged", tenant), merged, operation
    )

    assert completed.changed == 2
    counts = await matcher.store.count_vectors(MODEL, DIM, tenant, [a.person_id, b0.person_id])
    assert counts == {a.person_id: 3}
    later = ingested(tenant, bob[2])
    await publish(nats_connection, [later])
    matches = await matched_by_source(nats_connection, tenant, 4)  # with the three stored before
    assert matches[later.event_id].person_id == a.person_id


async def test_split_moves_exactly_the_listed_sightings(matcher: Matcher, nats_connection: NatsClient) -> None:
    tenant = new_tenant()
    faces = person_vectors(np.random.default_rng(22), 3, noise=0.5)
    first, second, third = await stored_faces(matcher, list(faces), tenant)
    person = first.person_id
    assert second.person_id == third.person_id == person
    operation, new_person = uuid.uuid4(), uuid.uuid4()
    split = PersonSplit(
        tenant_id=tenant,
        operation_id=operation,
        person_id=person,
        new_person_id=new_person,
        sighting_ids=[second.source_event_id, uuid.uuid4()],  # an unknown sighting changes nothing
    )

    completed = await step_done_twice(
        matcher, nats_connection, subjects.identity_event("person_split", tenant), split, operation
    )

    assert completed.changed == 1
    ids = [first.source_event_id, second.source_event_id, third.source_event_id]
    stored = await matcher.store.find_sightings(MODEL, DIM, tenant, ids)
    assert [stored[i].person_id for i in ids] == [person, new_person, person]


async def test_erase_leaves_no_vector_and_the_same_face_afterwards_is_a_new_person(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    tenant = new_tenant()
    faces = person_vectors(np.random.default_rng(23), 3, noise=0.5)
    first, second = await stored_faces(matcher, list(faces[:2]), tenant)
    operation = uuid.uuid4()
    erased = PersonErased(tenant_id=tenant, operation_id=operation, person_id=first.person_id)

    completed = await step_done_twice(
        matcher, nats_connection, subjects.identity_event("person_erased", tenant), erased, operation
    )

    assert completed.changed == 2
    ids = [first.source_event_id, second.source_event_id]
    assert await matcher.store.find_sightings(MODEL, DIM, tenant, ids) == {}
    assert all(not part.rows for part in await matcher.store.vectors_of_persons(tenant, [first.person_id]))
    again = ingested(tenant, faces[2])
    await publish(nats_connection, [again])
    matches = await matched_by_source(nats_connection, tenant, 3)  # with the two stored before
    assert matches[again.event_id].is_new_person and matches[again.event_id].person_id != first.person_id


async def test_a_person_marked_staff_is_matched_as_staff_and_as_a_customer_once_unmarked(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    tenant = new_tenant()
    faces = person_vectors(np.random.default_rng(26), 4, noise=0.5)
    first, second = await stored_faces(matcher, list(faces[:2]), tenant)
    person = first.person_id
    assert second.person_id == person and first.person_kind is PersonKind.CUSTOMER
    operation = uuid.uuid4()
    marked = PersonKindChanged(tenant_id=tenant, operation_id=operation, person_id=person, kind=PersonKind.STAFF)

    completed = await step_done_twice(
        matcher, nats_connection, subjects.identity_event("person_kind_changed", tenant), marked, operation
    )

    assert completed.changed == 2
    [audit] = await collect_messages(nats_connection, f"audit.matcher.vectors_marked_staff.{tenant}", 1)
    assert AuditEntryRecorded.model_validate_json(audit.data).resource == f"person/{person}"
    ids = [first.source_event_id, second.source_event_id]
    stored = await matcher.store.find_sightings(MODEL, DIM, tenant, ids)
    assert {row.kind for row in stored.values()} == {PersonKind.STAFF}
    later = ingested(tenant, faces[2])
    await publish(nats_connection, [later])
    matches = await matched_by_source(nats_connection, tenant, 3)
    assert (matches[later.event_id].person_id, matches[later.event_id].person_kind) == (person, PersonKind.STAFF)

    unmarked = PersonKindChanged(
        tenant_id=tenant, operation_id=uuid.uuid4(), person_id=person, kind=PersonKind.CUSTOMER
    )
    # the later face's vector was kept with the person's kind then (staff): three rows to relabel
    assert (await change_person_kind(unmarked, matcher.ports)).changed == 3
    assert (await change_person_kind(unmarked, matcher.ports)).changed == 3  # a repeat announces the first count
    [again] = await stored_faces(matcher, [faces[3]], tenant)
    assert (again.person_id, again.person_kind) == (person, PersonKind.CUSTOMER)


async def test_a_redelivered_face_republishes_the_identical_face_matched(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    """The first sighting of a new person (similarity None, is_new_person) redelivered after another face of
    the person was stored: the matcher answers with the event it published, not a re-decision."""
    tenant = new_tenant()
    faces = person_vectors(np.random.default_rng(24), 2, noise=0.5)
    wire = await watch(nats_connection, f"faces.matched.{tenant}.>")
    face: FaceIngested = ingested(tenant, faces[0])
    await publish(nats_connection, [face])
    [first] = await wait_for(wire, 1)
    await stored_faces(matcher, [faces[1]], tenant)
    await publish_again(nats_connection, subjects.face_ingested(tenant, face.site_id), face)
    _, _, again = await wait_for(wire, 3)

    assert again.data == first.data
    event = FaceMatched.model_validate_json(again.data)
    assert event.event_id == derive_event_id(face.event_id, "matched") and event.is_new_person
    assert len(await matched_by_source(nats_connection, tenant, 3, timeout=2)) == 2


class Killed(Exception):
    """Stands for the matcher dying at this point (kill -9): nothing after it ran."""


async def test_a_merge_that_died_after_relabelling_announces_the_original_count_when_repeated(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    """The first attempt relabels every vector and dies before announcing; the repeat finds nothing left to
    relabel but announces the count the first attempt recorded."""
    tenant = new_tenant()
    rng = np.random.default_rng(25)
    [a] = await stored_faces(matcher, list(person_vectors(rng, 1, noise=0.5)), tenant)
    [b] = await stored_faces(matcher, list(person_vectors(rng, 1, noise=0.5)), tenant)
    operation = uuid.uuid4()
    merged = PersonsMerged(
        tenant_id=tenant, operation_id=operation, person_id=a.person_id, merged_person_ids=[b.person_id]
    )

    async def die(subject: str, event: Event) -> None:
        raise Killed

    with pytest.raises(Killed):
        await merge_persons(merged, replace(matcher.ports, publish=die))
    assert await matcher.store.count_vectors(MODEL, DIM, tenant, [a.person_id, b.person_id]) == {a.person_id: 2}

    completed = await step_done_twice(
        matcher, nats_connection, subjects.identity_event("persons_merged", tenant), merged, operation
    )
    assert completed.changed == 1
