"""Ingest against real NATS JetStream and a real S3 server."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
from nats.aio.client import Client as NatsClient

from schemas import FaceDetected, FaceIngested, FaceRejected, subjects
from schemas.ids import derive_event_id, new_event_id
from services.ingest.bootstrap import Ingest
from tests.ingest.integration.conftest import registered_tenant
from tests.support import collect_messages, new_tenant

Detected = Callable[..., FaceDetected]


async def test_accepted_face_is_stored_and_republished(
    ingest: Ingest, nats_connection: NatsClient, detected: Detected
) -> None:
    tenant = await registered_tenant(nats_connection)
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
    assert ingested.crop_key == f"{tenant}/store-1/{event.captured_at:%Y/%m/%d}/{event.event_id}.jpg"
    assert await ingest.crops.get_crop(ingested.crop_key) == event.crop_jpeg


async def test_invalid_events_are_rejected_with_a_reason(
    nats_connection: NatsClient, ingest: Ingest, detected: Detected
) -> None:
    tenant = await registered_tenant(nats_connection)
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
    tenant = await registered_tenant(nats_connection)
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
    tenant = await registered_tenant(nats_connection)
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


EIGHT_MIB = 8 * 1024 * 1024
CHUNK = 64 * 1024


class CountingBody:
    """An 8 MiB request body that streams in chunks and counts how many bytes the server pulled from it."""

    def __init__(self) -> None:
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(EIGHT_MIB // CHUNK):
            self.pulled += CHUNK
            yield b"[" * CHUNK


async def test_an_anonymous_8_mib_body_is_refused_unread(ingest: Ingest) -> None:
    transport = httpx.ASGITransport(app=ingest.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        body = CountingBody()
        response = await client.post("/v1/faces", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert body.pulled == 0


async def test_an_8_mib_body_is_refused_before_it_is_read_or_cut_at_the_limit(
    ingest: Ingest, make_token: Callable[..., str]
) -> None:
    limit = ingest.settings.body_limit
    device = {"authorization": f"Bearer {make_token(new_tenant(), ['device'])}", "content-type": "application/json"}
    transport = httpx.ASGITransport(app=ingest.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        declared = CountingBody()
        headers = {**device, "content-length": str(EIGHT_MIB)}
        refused = await client.post("/v1/faces", content=declared, headers=headers)
        assert refused.status_code == 413 and f"limit of {limit} bytes" in refused.text
        assert declared.pulled == 0
        streamed = CountingBody()  # no Content-Length: chunked, read only up to the limit
        cut = await client.post("/v1/faces", content=streamed, headers=device)
        assert cut.status_code == 413 and "not read further" in cut.text
        assert limit < streamed.pulled <= limit + CHUNK


async def test_http_refuses_old_sightings_and_unknown_models_with_the_reason(
    ingest: Ingest, make_token: Callable[..., str], detected: Detected, nats_connection: NatsClient
) -> None:
    tenant = await registered_tenant(nats_connection)
    device = {"authorization": f"Bearer {make_token(tenant, ['device'])}", "content-type": "application/json"}
    refusals = {
        "older than 7 days": detected(tenant, captured_at=datetime(1970, 1, 1, tzinfo=UTC)),
        "in the future": detected(tenant, captured_at=datetime.now(UTC) + timedelta(days=1)),
        "not a known model": detected(tenant, embedding_model="anything-at-all@1"),
        "gives 512": detected(tenant, embedding_model="arcface_r50_w600k_512@01234567"),
    }
    transport = httpx.ASGITransport(app=ingest.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        for reason, event in refusals.items():
            response = await client.post("/v1/faces", content=event.to_json_bytes(), headers=device)
            assert response.status_code == 422 and reason in response.text, (reason, response.text)
        unparsable = await client.post("/v1/faces", content=b'{"schema": "FaceDetected.v1"}', headers=device)
        assert unparsable.status_code == 422 and "tenant_id" in unparsable.text


async def test_the_bus_rejects_old_sightings_and_unknown_models_with_the_reason(
    ingest: Ingest, nats_connection: NatsClient, detected: Detected
) -> None:
    tenant = await registered_tenant(nats_connection)
    js = nats_connection.jetstream()
    subject = subjects.face_detected(tenant, "store-1", "entrance")
    await js.publish(subject, detected(tenant, captured_at=datetime(1970, 1, 1, tzinfo=UTC)).to_json_bytes())
    await js.publish(subject, detected(tenant, embedding_model="bench-model@00000000").to_json_bytes())
    messages = await collect_messages(nats_connection, subjects.face_rejected(tenant), 2)
    reasons = sorted(FaceRejected.model_validate_json(m.data).reason for m in messages)
    assert len(reasons) == 2
    assert any("1970-01-01" in r and "older than" in r for r in reasons)
    assert any("bench-model@00000000" in r and "not a known model" in r for r in reasons)
    assert await ingest.crops.keys_under(f"{tenant}/") == []


async def test_events_of_unregistered_sites_cameras_and_models_are_refused_with_the_reason(
    ingest: Ingest, nats_connection: NatsClient, detected: Detected, make_token: Callable[..., str]
) -> None:
    tenant = await registered_tenant(nats_connection)
    js = nats_connection.jetstream()
    refused = [
        detected(tenant, site_id="store-9"),  # no such site
        detected(tenant, camera_id="back-door"),  # no such camera
        detected(tenant, embedding_model="mobilefacenet_arcface_128@00000000"),  # a known name, not its model
    ]
    for event in refused:
        await js.publish(subjects.face_detected(tenant, event.site_id, event.camera_id), event.to_json_bytes())
    reasons = sorted(
        FaceRejected.model_validate_json(m.data).reason
        for m in await collect_messages(nats_connection, subjects.face_rejected(tenant), 3)
    )
    assert any("site store-9 is not registered" in r for r in reasons)
    assert any("camera back-door is not registered" in r for r in reasons)
    assert any("mobilefacenet_arcface_128@00000000 is not one of" in r for r in reasons)
    device = {"authorization": f"Bearer {make_token(tenant, ['device'])}", "content-type": "application/json"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ingest.app), base_url="http://ingest") as client:
        answer = await client.post("/v1/faces", content=refused[0].to_json_bytes(), headers=device)
    assert answer.status_code == 422 and "PUT /v1/sites" in answer.json()["detail"]
    assert await ingest.crops.keys_under(f"{tenant}/") == []


async def test_a_burst_is_handled_concurrently_each_face_once(
    ingest: Ingest, nats_connection: NatsClient, detected: Detected
) -> None:
    """REVISIT_CONSUMER_WORKERS faces at once: every crop stored and every face announced exactly once, and the
    consumer left with nothing pending or unacknowledged (each ack came after its own crop and event)."""
    assert ingest.settings.consumer_workers > 1
    tenant = await registered_tenant(nats_connection)
    events = [detected(tenant) for _ in range(300)]
    js = nats_connection.jetstream()
    redelivered_before = (await js.consumer_info(subjects.FACES_DETECTED_STREAM.name, "ingest")).num_redelivered
    await asyncio.gather(
        *(
            js.publish(
                subjects.face_detected(tenant, "store-1", "entrance"),
                event.to_json_bytes(),
                headers={"Nats-Msg-Id": str(event.event_id)},
            )
            for event in events
        )
    )
    messages = await collect_messages(nats_connection, subjects.face_ingested(tenant, "store-1"), 300, timeout=60)
    announced = [FaceIngested.model_validate_json(message.data).source_event_id for message in messages]
    assert sorted(announced) == sorted(event.event_id for event in events)
    assert len(await ingest.crops.keys_under(f"{tenant}/")) == 300
    for _ in range(50):  # the last acks follow their announcements by a moment
        info = await js.consumer_info(subjects.FACES_DETECTED_STREAM.name, "ingest")
        if info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.1)
    assert (info.num_ack_pending, info.num_redelivered) == (0, redelivered_before)
