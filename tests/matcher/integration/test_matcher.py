"""Matcher against real NATS JetStream and Milvus Lite."""

import numpy as np
from nats.aio.client import Client as NatsClient

from schemas import FaceIngested, FaceMatched, FaceUnidentified
from schemas.ids import derive_event_id
from services.matcher.bootstrap import Matcher
from tests.support import collect_messages, new_tenant
from tests.support_matcher import ingested, matched_by_source, person_vectors, publish


async def test_a_burst_of_one_new_face_is_one_person(matcher: Matcher, nats_connection: NatsClient) -> None:
    tenant = new_tenant()
    rng = np.random.default_rng(7)
    burst = [ingested(tenant, v) for v in person_vectors(rng, 12)]
    await publish(nats_connection, burst)
    matches = await matched_by_source(nats_connection, tenant, 12)
    assert len(matches) == 12
    assert len({m.person_id for m in matches.values()}) == 1
    assert sum(m.is_new_person for m in matches.values()) == 1


async def test_returning_face_is_the_same_person_and_others_are_not(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    tenant = new_tenant()
    rng = np.random.default_rng(8)
    alice, bob = person_vectors(rng, 3), person_vectors(rng, 2)
    first = [ingested(tenant, alice[0]), ingested(tenant, bob[0])]
    await publish(nats_connection, first)
    first_matches = await matched_by_source(nats_connection, tenant, 2)
    later = [ingested(tenant, alice[1]), ingested(tenant, alice[2]), ingested(tenant, bob[1])]
    await publish(nats_connection, later)
    matches = await matched_by_source(nats_connection, tenant, 5)
    alice_id = first_matches[first[0].event_id].person_id
    bob_id = first_matches[first[1].event_id].person_id
    assert alice_id != bob_id
    assert [matches[e.event_id].person_id for e in later] == [alice_id, alice_id, bob_id]
    assert not any(matches[e.event_id].is_new_person for e in later)
    assert all((matches[e.event_id].similarity or 0) >= 0.4 for e in later)


async def test_tenants_never_share_persons(matcher: Matcher, nats_connection: NatsClient) -> None:
    rng = np.random.default_rng(9)
    face = person_vectors(rng, 2, noise=0.01)
    tenant_a, tenant_b = new_tenant(), new_tenant()
    await publish(nats_connection, [ingested(tenant_a, face[0])])
    [a] = (await matched_by_source(nats_connection, tenant_a, 1)).values()
    await publish(nats_connection, [ingested(tenant_b, face[1])])
    [b] = (await matched_by_source(nats_connection, tenant_b, 1)).values()
    assert a.person_id != b.person_id and b.is_new_person


async def test_redelivered_event_gives_the_same_match(matcher: Matcher, nats_connection: NatsClient) -> None:
    tenant = new_tenant()
    event = ingested(tenant, person_vectors(np.random.default_rng(10), 1)[0])
    first = await matcher_direct(matcher, [event])
    again = await matcher_direct(matcher, [event])
    assert first[0].event_id == again[0].event_id and first[0].person_id == again[0].person_id


async def test_the_same_face_twice_in_one_fetched_batch_is_one_new_sighting(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    """A redelivery fetched in the same batch as its first delivery: matched once. Both copies searched together
    would make the second join the person the first just started, and the published sighting would say the
    person is not new (identity would never hear of it as new)."""
    from nats.aio.msg import Msg

    from services.common.batch_consumer import Decoded
    from services.matcher.consumers import face_consumer

    tenant = new_tenant()
    event = ingested(tenant, person_vectors(np.random.default_rng(16), 1)[0])
    raw = Msg(nats_connection, subject=f"faces.ingested.{tenant}.site", data=event.model_dump_json().encode())
    consumer = face_consumer(matcher.broker, matcher.settings, matcher.ports)
    await consumer.handle([Decoded(event, raw), Decoded(event, raw)])
    [sighting] = (await matched_by_source(nats_connection, tenant, 1)).values()
    assert sighting.is_new_person
    [recorded] = (await matcher.ports.decisions.find(tenant, [event.event_id])).values()
    assert recorded.person_id == sighting.person_id and recorded.is_new_person


async def matcher_direct(matcher: Matcher, events: list[FaceIngested]) -> list[FaceMatched]:
    """Faces at the default test quality (above the enrolment floor), so each one is matched."""
    from services.matcher.handlers import match_faces

    outcomes = await match_faces(events, matcher.ports)
    return [matched(outcome) for outcome in outcomes]


def matched(outcome: FaceMatched | FaceUnidentified) -> FaceMatched:
    assert isinstance(outcome, FaceMatched), outcome
    return outcome


async def test_wrong_dimension_for_a_model_is_dead_lettered(matcher: Matcher, nats_connection: NatsClient) -> None:
    tenant = new_tenant()
    rng = np.random.default_rng(11)
    await publish(nats_connection, [ingested(tenant, rng.normal(size=128), model="dim-model@1")])
    await matched_by_source(nats_connection, tenant, 1)
    await publish(nats_connection, [ingested(tenant, rng.normal(size=256), model="dim-model@1")])
    [dead] = await collect_messages(nats_connection, f"deadletter.matcher.faces.ingested.{tenant}.>", 1)
    assert "256-d" in (dead.headers or {})["Revisit-Reason"]


async def test_replicas_matching_the_same_new_face_at_once_create_one_person(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    """Four matcher replicas (own Milvus clients, own in-memory copies, one store) get the same new face at the
    same moment: the tenant's lease makes each search after the previous one's insert, and the vector log brings
    each copy up to date first, so they agree on one person."""
    import asyncio
    from dataclasses import replace

    from services.matcher.adapters.milvus import FaceVectorStore
    from services.matcher.bootstrap import open_vector_index
    from services.matcher.handlers import match_faces

    tenant = new_tenant()
    await matcher_direct(matcher, [ingested(tenant, person_vectors(np.random.default_rng(13), 1)[0])])  # warm up
    burst = [ingested(tenant, v) for v in person_vectors(np.random.default_rng(12), 4, noise=0.2)]
    replicas = []
    for _ in burst:
        store = FaceVectorStore(matcher.settings.milvus_uri, "", matcher.settings.collection_prefix)
        await store.connect()
        replicas.append(await open_vector_index(matcher.settings, nats_connection, store))
    results = await asyncio.gather(
        *(
            match_faces([event], replace(matcher.ports, store=index.store, index=index))
            for event, index in zip(burst, replicas, strict=True)
        )
    )
    matches = [matched(result) for [result] in results]
    assert len({m.person_id for m in matches}) == 1
    assert sum(m.is_new_person for m in matches) == 1


WEAK = 0.1
"""A quality well below the default floor (0.65): a crop too poor to recognise."""


async def unidentified_on_stream(
    connection: NatsClient, tenant: str, count: int, timeout: float = 20
) -> list[FaceUnidentified]:
    messages = await collect_messages(connection, f"faces.unidentified.{tenant}.>", count, timeout)
    return [FaceUnidentified.model_validate_json(m.data) for m in messages]


async def identify_direct(matcher: Matcher, events: list[FaceIngested]) -> list[FaceMatched | FaceUnidentified]:
    """What the consumer's batch handler calls, with these events as one batch."""
    from services.matcher.handlers import identify_faces

    return await identify_faces(events, matcher.ports)


async def test_weak_faces_are_unidentified_sightings_and_good_ones_beside_them_are_matched(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    """One batch: a good face, a weak crop of the same person, a weak crop of a stranger. Only the good face
    is searched and stored; the weak ones are published as FaceUnidentified, never as persons."""
    tenant = new_tenant()
    rng = np.random.default_rng(14)
    alice, stranger = person_vectors(rng, 2), person_vectors(rng, 1)
    batch = [
        ingested(tenant, alice[0]),
        ingested(tenant, alice[1], quality=WEAK),
        ingested(tenant, stranger[0], quality=WEAK),
    ]
    results = await identify_direct(matcher, batch)

    assert [type(r) for r in results] == [FaceMatched, FaceUnidentified, FaceUnidentified]
    assert [r.source_event_id for r in results] == [e.event_id for e in batch]
    good = results[0]
    assert isinstance(good, FaceMatched) and good.is_new_person
    unidentified = {e.source_event_id: e for e in await unidentified_on_stream(nats_connection, tenant, 2)}
    assert set(unidentified) == {batch[1].event_id, batch[2].event_id}
    for event in batch[1:]:
        sighting = unidentified[event.event_id]
        assert sighting.event_id == derive_event_id(event.event_id, "unidentified")
        assert (sighting.quality, sighting.track_id, sighting.crop_key) == (WEAK, event.track_id, event.crop_key)
    matched = await matched_by_source(nats_connection, tenant, 3, timeout=3)  # only the good face comes
    assert list(matched) == [batch[0].event_id]
    dim = len(batch[0].embedding)
    stored = await matcher.store.find_sightings("test-model@1", dim, tenant, [e.event_id for e in batch])
    assert list(stored) == [batch[0].event_id]
    assert await matcher.store.count_vectors("test-model@1", dim, tenant, [good.person_id]) == {good.person_id: 1}


async def test_a_weak_face_from_the_stream_is_one_unidentified_sighting_even_when_redelivered(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    tenant = new_tenant()
    weak = ingested(tenant, person_vectors(np.random.default_rng(15), 1)[0], quality=WEAK)
    await publish(nats_connection, [weak])  # through the batch consumer
    [sighting] = await unidentified_on_stream(nats_connection, tenant, 1)
    assert sighting.event_id == derive_event_id(weak.event_id, "unidentified")
    [again] = await identify_direct(matcher, [weak])  # a redelivery republishes the same event id ...
    assert again.event_id == sighting.event_id
    assert len(await unidentified_on_stream(nats_connection, tenant, 2, timeout=3)) == 1  # ... which JetStream drops
    assert await matched_by_source(nats_connection, tenant, 1, timeout=1) == {}


BETWEEN_FLOORS = 0.7
"""Above the identify floor (0.65), below the enrolment floor (0.80): may join a person, never start one."""


async def test_a_face_below_the_enrolment_floor_joins_a_known_person_but_never_starts_one(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    tenant = new_tenant()
    rng = np.random.default_rng(16)
    alice, stranger = person_vectors(rng, 2, noise=0.2), person_vectors(rng, 1)
    [first] = await matcher_direct(matcher, [ingested(tenant, alice[0])])
    assert first.is_new_person

    batch = [ingested(tenant, alice[1], quality=BETWEEN_FLOORS), ingested(tenant, stranger[0], quality=BETWEEN_FLOORS)]
    joined, unknown = await identify_direct(matcher, batch)

    assert isinstance(joined, FaceMatched) and joined.person_id == first.person_id and not joined.is_new_person
    assert isinstance(unknown, FaceUnidentified) and unknown.source_event_id == batch[1].event_id
    [published] = await unidentified_on_stream(nats_connection, tenant, 1)
    assert published.event_id == derive_event_id(batch[1].event_id, "unidentified")
    dim = len(batch[0].embedding)
    assert await matcher.store.find_sightings("test-model@1", dim, tenant, [e.event_id for e in batch]) == {}
    assert await matcher.store.count_vectors("test-model@1", dim, tenant, [first.person_id]) == {first.person_id: 1}
