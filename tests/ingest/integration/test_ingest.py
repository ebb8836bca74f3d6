"""Ingest against real NATS JetStream and a real S3 server."""

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from nats.aio.client import Client as NatsClient

from schemas import FaceDetected, FaceIngested, FaceRejected, subjects
from schemas.export import EXAMPLES_DIR
from schemas.ids import new_event_id
from services.ingest.bootstrap import Ingest, bootstrap
from services.ingest.config import IngestSettings
from tests.support import collect_messages, new_tenant


@pytest.fixture(scope="module")
async def ingest(nats_url: str, s3_endpoint: str, s3_credentials: tuple[str, str], keys) -> AsyncIterator[Ingest]:
    settings = IngestSettings(
        nats_url=nats_url,
        s3_endpoint_url=s3_endpoint,
        s3_access_key=s3_credentials[0],
        s3_secret_key=s3_credentials[1],
        jwt_public_key=keys.public_pem,
        environment="test",
    )
    async with bootstrap(settings) as service:
        await service.broker.start()
        yield service


def detected(tenant: str, **changes: object) -> FaceDetected:
    example = json.loads((EXAMPLES_DIR / "FaceDetected.v1.json").read_text())
    example |= {"tenant_id": tenant, "event_id": str(new_event_id())} | changes
    return FaceDetected.model_validate(example)


async def test_accepted_face_is_stored_and_republished(ingest: Ingest, nats_connection: NatsClient) -> None:
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


async def test_invalid_events_are_rejected_with_a_reason(nats_connection: NatsClient, ingest: Ingest) -> None:
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
    ingest: Ingest, make_token: Callable[..., str], nats_connection: NatsClient
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


async def test_health_and_metrics(ingest: Ingest) -> None:
    transport = httpx.ASGITransport(app=ingest.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        metrics = (await client.get("/metrics")).text
    assert "revisit_messages_consumed_total" in metrics
