"""Not-same pairs, staff recognised on the server and duplicate suggestions, against real NATS and Milvus Lite."""

import asyncio
import uuid
from collections.abc import Callable

import httpx
import numpy as np
from nats.aio.client import Client as NatsClient

from schemas import FaceMatched, PersonKind, PersonsMarkedDifferent, subjects
from schemas.staff import staff_entry
from services.common.bus import open_staff_gallery
from services.matcher.adapters.milvus import StoredVector
from services.matcher.bootstrap import Matcher
from services.matcher.domain.assignment import normalize
from services.matcher.domain.not_same import person_pair
from services.matcher.domain.staff import staff_person_id
from tests.support import new_tenant
from tests.support_matcher import MODEL, ingested, matched_by_source, publish

DIM = 128


def axis_mix(*weights: float) -> np.ndarray:
    """A unit vector from weights on the first axes: similarities between such faces are set exactly."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    result: np.ndarray = normalize(vector[None, :])[0]
    return result


async def store_persons(matcher: Matcher, tenant: str, vectors: list[np.ndarray]) -> list[uuid.UUID]:
    """Persons written straight into the store, so that near-identical ones can exist side by side."""
    persons = [uuid.uuid4() for _ in vectors]
    rows = [
        StoredVector(uuid.uuid4(), person, tenant, PersonKind.CUSTOMER, 0, vector.tolist())
        for person, vector in zip(persons, vectors, strict=True)
    ]
    await matcher.store.insert(MODEL, DIM, rows)
    return persons


async def mark_different(matcher: Matcher, connection: NatsClient, tenant: str, a: uuid.UUID, b: uuid.UUID) -> None:
    """Through the consumer; waits until the matcher's mirror has the pair."""
    event = PersonsMarkedDifferent(tenant_id=tenant, person_id=a, other_person_id=b)
    subject = subjects.identity_event("persons_marked_different", tenant)
    await connection.jetstream().publish(subject, event.to_json_bytes(), headers={"Nats-Msg-Id": str(event.event_id)})
    for _ in range(200):
        if person_pair(a, b) in matcher.ports.not_same.pairs(tenant):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the not-same pair never reached the matcher")


async def test_a_face_two_persons_marked_different_cannot_tell_apart_joins_neither(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    tenant = new_tenant()
    alice, bob = await store_persons(matcher, tenant, [axis_mix(1, 0, 0), axis_mix(0, 1, 0)])
    await mark_different(matcher, nats_connection, tenant, bob, alice)
    between = ingested(tenant, axis_mix(1, 0.97, 0.3))  # 0.70 to Alice, 0.68 to Bob
    clearly_alice = ingested(tenant, axis_mix(1, 0, 0.3))  # 0.96 to Alice, 0 to Bob, 0.73 to the new person
    await publish(nats_connection, [between])
    first = await matched_by_source(nats_connection, tenant, 1)
    await publish(nats_connection, [clearly_alice])
    matches = await matched_by_source(nats_connection, tenant, 2)

    assert first[between.event_id].is_new_person and first[between.event_id].person_id not in (alice, bob)
    assert matches[clearly_alice.event_id].person_id == alice


async def test_a_staff_face_is_published_as_staff_and_not_stored(matcher: Matcher, nats_connection: NatsClient) -> None:
    tenant = new_tenant()
    rng = np.random.default_rng(31)
    anna = rng.normal(size=DIM)
    gallery = await open_staff_gallery(nats_connection)
    await gallery.put(
        subjects.staff_gallery_key(tenant, "anna"), staff_entry(tenant, "anna", MODEL, [anna.tolist()]).to_json_bytes()
    )
    for _ in range(200):
        if matcher.ports.staff.vectors(tenant, MODEL) is not None:
            break
        await asyncio.sleep(0.05)
    face = ingested(tenant, anna + 0.3 * rng.normal(size=DIM))
    await publish(nats_connection, [face])
    [matched] = (await matched_by_source(nats_connection, tenant, 1)).values()

    assert matched.person_kind == PersonKind.STAFF and not matched.is_new_person
    assert matched.person_id == staff_person_id(tenant, "anna") and (matched.similarity or 0) >= 0.45
    assert await matcher.store.find_sightings(MODEL, DIM, tenant, [face.event_id]) == {}
    await gallery.delete(subjects.staff_gallery_key(tenant, "anna"))


async def test_duplicates_route_returns_near_identical_persons_but_not_a_not_same_pair(
    matcher: Matcher, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    a, b, _, d = await store_persons(
        matcher,
        tenant,
        [axis_mix(1, 0, 0, 0), axis_mix(0.8, 0.6, 0, 0), axis_mix(0, 0, 0, 1), axis_mix(0.7, 0, 0.714, 0)],
    )  # a-b 0.8, a-d 0.7 (marked different), b-d 0.56, c apart
    await mark_different(matcher, nats_connection, tenant, a, d)
    transport = httpx.ASGITransport(app=matcher.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://matcher") as client:
        analyst = {"Authorization": f"Bearer {make_token(tenant, ['analyst'])}"}
        response = await client.get("/v1/persons/duplicates", params={"min_similarity": 0.5}, headers=analyst)
        viewer = {"Authorization": f"Bearer {make_token(tenant, ['viewer'])}"}
        forbidden = await client.get("/v1/persons/duplicates", headers=viewer)
        other_tenant = {"Authorization": f"Bearer {make_token(new_tenant(), ['admin'])}"}
        elsewhere = await client.get("/v1/persons/duplicates", headers=other_tenant)

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [{item["person_id"], item["other_person_id"]} for item in items] == [{str(a), str(b)}, {str(b), str(d)}]
    assert abs(items[0]["similarity"] - 0.8) < 1e-3 and items[1]["similarity"] < items[0]["similarity"]
    assert forbidden.status_code == 403
    assert elsewhere.json() == {"items": []}


async def test_matched_faces_are_customers_by_default(matcher: Matcher, nats_connection: NatsClient) -> None:
    tenant = new_tenant()
    face = ingested(tenant, np.random.default_rng(32).normal(size=DIM))
    await publish(nats_connection, [face])
    [matched] = (await matched_by_source(nats_connection, tenant, 1)).values()
    assert isinstance(matched, FaceMatched) and matched.person_kind == PersonKind.CUSTOMER
