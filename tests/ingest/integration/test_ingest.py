"""Ingest against real NATS JetStream and a real S3 server."""

from collections.abc import Callable

import httpx
from nats.aio.client import Client as NatsClient

from schemas import FaceDetected, FaceIngested, FaceRejected, subjects
from schemas.ids import derive_event_id, new_event_id
from services.ingest.bootstrap import Ingest
from tests.support import collect_messages, new_tenant

Detected = Callable[..., FaceDetected]


async def test_accepted_face_is_stored_and_republished(
    ingest: Ingest, nats_connection: NatsClient, detected: Detected
) -> None:
    tenant = new_tenant()
    event = detected(tenant)
    js = nats_connection.jetstream()
    await js.publish(
        subjects.face_detected(tenant, "store-1", "entrance"),
        event.to_json_bytes(),
        headers={"Nats-Msg-Id": str(event.event_id)},
    )
    [message] = await collect_messages(nats_connection, subjects.face_ingested(tenant, "store-1"), 1)
    ingested = FaceIngested.model_validate_json(message.data)
    assert ingested.source_event_id == event.event_id
    assert ingested.embedding == event.embedding
    assert ingested.crop_key == f"{tenant}/store-1/2026/11/02/{event.event_id}.jpg"
    assert await ingest.crops.get_crop(ingested.crop_key) == event.crop_jpeg


async def test_invalid_events_are_rejected_with_a_reason(
    nats_connection: NatsClient, ingest: Ingest, detected: Detected
) -> None:
    tenant = new_tenant()
    js = nats_connection.jetstream()
    subject = subjects.face_detected(tenant, "store-1", "entrance")
    await js.publish(subject, b"not json at all")
    await js.publish(subject, detected(tenant, crop_jpeg="iVBORw0KGgo=").to_json_bytes())  # a PNG header
    await js.publish(subject, detected(new_tenant()).to_json_bytes())  # another tenant's event on this subject
    messages = await collect_messages(nats_connection, subjects.face_rejected(tenant), 3)
    reasons = sorted(FaceRejected.model_validate_json(m.data).reason for m in messages)
    assert len(reasons) == 3
    assert any("not a JPEG" in r for r in reasons)
    assert any("does not match" in r for r in reasons)
    assert any("invalid" in r and "json" in r.lower() for r in reasons)


async def test_http_ingest_needs_a_device_token_of_the_tenant(
    ingest: Ingest, make_token: Callable[..., str], nats_connection: NatsClient, detected: Detected
) -> None:
    tenant = new_tenant()
    event = detected(tenant)
    transport = httpx.ASGITransport(app=ingest.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        body = event.to_json_bytes()
        headers = {"content-type": "application/json"}
        assert (await client.post("/v1/faces", content=body, headers=headers)).status_code == 401
        other = {"authorization": f"Bearer {make_token(new_tenant(), ['device'])}", **headers}
        assert (await client.post("/v1/faces", content=body, headers=other)).status_code == 403
        analyst = {"authorization": f"Bearer {make_token(tenant, ['analyst'])}", **headers}
        assert (await client.post("/v1/faces", content=body, headers=analyst)).status_code == 403
        device = {"authorization": f"Bearer {make_token(tenant, ['device'])}", **headers}
        bad = detected(tenant, embedding=[0.0] * 128).to_json_bytes()
        refused = await client.post("/v1/faces", content=bad, headers=device)
        assert refused.status_code == 422 and "zeros" in refused.text
        accepted = await client.post("/v1/faces", content=body, headers=device)
        assert accepted.status_code == 202, accepted.text
    [message] = await collect_messages(nats_connection, subjects.face_ingested(tenant, "store-1"), 1)
    assert FaceIngested.model_validate_json(message.data).source_event_id == event.event_id


async def test_a_face_redelivered_under_a_new_msg_id_is_stored_once_and_announced_identically(
    ingest: Ingest, nats_connection: NatsClient, detected: Detected
) -> None:
    """An edge replaying its outbox after the duplicate window, or a copy republished by hand, reaches the
    consumer again: it must overwrite the same crop and publish the byte-identical FaceIngested."""
    tenant = new_tenant()
    event = detected(tenant)
    ingested_subject = subjects.face_ingested(tenant, "store-1")
    seen = await nats_connection.subscribe(ingested_subject)  # core NATS: sees every publish, duplicates too
    js = nats_connection.jetstream()
    subject = subjects.face_detected(tenant, "store-1", "entrance")
    for msg_id in (str(event.event_id), str(new_event_id())):
        ack = await js.publish(subject, event.to_json_bytes(), headers={"Nats-Msg-Id": msg_id})
        assert not ack.duplicate
    first, second = [await seen.next_msg(timeout=20) for _ in range(2)]
    await seen.unsubscribe()
    assert first.data == second.data
    announced = FaceIngested.model_validate_json(first.data)
    assert announced.event_id == derive_event_id(event.event_id, "ingested")
    assert await ingest.crops.keys_under(f"{tenant}/") == [announced.crop_key]
    in_stream = await collect_messages(nats_connection, ingested_subject, 2, timeout=2)
    assert [m.data for m in in_stream] == [first.data]


async def test_health_and_metrics(ingest: Ingest) -> None:
    transport = httpx.ASGITransport(app=ingest.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        metrics = (await client.get("/metrics")).text
    assert "revisit_messages_consumed_total" in metrics
