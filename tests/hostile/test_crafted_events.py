"""Crafted events on ingest's subject: each hostile FaceDetected is refused with a reason (FaceRejected) or
dead-lettered, the consumer keeps consuming (a valid event sent after them is ingested), and the dead letters
stay bounded. Each goes with a new Nats-Msg-Id, so JetStream's duplicate window lets every one through."""

import base64
import json
from collections.abc import Callable

from nats.aio.client import Client as NatsClient

from schemas import FaceDetected, FaceIngested, FaceRejected, subjects
from schemas.ids import new_event_id
from services.ingest.bootstrap import Ingest
from tests.ingest.integration.conftest import registered_tenant
from tests.support import collect_messages, new_tenant

Detected = Callable[..., FaceDetected]
JPEG_START = b"\xff\xd8\xff\xe0"


def crafted(tenant: str, detected: Detected) -> dict[str, bytes]:
    """Hostile bodies by what they try, each a valid event but for one thing."""
    valid = json.loads(detected(tenant).to_json_bytes())

    def body(**changes: object) -> bytes:
        return json.dumps(valid | {"event_id": str(new_event_id()), **changes}).encode()

    nan_embedding = body().replace(b'"embedding": [', b'"embedding": [NaN, ', 1)
    huge_crop = JPEG_START + b"\x00" * (600 * 1024)  # over max_crop_bytes (256 KiB), under NATS' 1 MiB payload
    return {
        "wrong types": body(embedding="not a vector", box=[1, 2]),
        "NaN": nan_embedding,
        "wrong dimension": body(embedding=[0.1] * 64),
        "huge integer": body(quality=10**400),
        "huge crop": body(crop_jpeg=base64.b64encode(huge_crop).decode()),
        "NUL in a field": body(track_id="t\x00"),
    }


async def test_hostile_events_are_refused_with_a_reason_and_the_consumer_keeps_consuming(
    ingest: Ingest,
    nats_connection: NatsClient,
    detected: Detected,
) -> None:
    tenant = await registered_tenant(nats_connection)
    js = nats_connection.jetstream()
    subject = subjects.face_detected(tenant, "store-1", "entrance")
    hostile = crafted(tenant, detected)
    for payload in hostile.values():
        await js.publish(subject, payload, headers={"Nats-Msg-Id": str(new_event_id())})
    stranger = new_tenant()  # registered nowhere
    unknown = detected(stranger)
    await js.publish(
        subjects.face_detected(stranger, "store-1", "entrance"),
        unknown.to_json_bytes(),
        headers={"Nats-Msg-Id": str(new_event_id())},
    )
    replayed = detected(tenant)
    for _ in range(3):  # one event id under three message ids: stored and announced once
        await js.publish(subject, replayed.to_json_bytes(), headers={"Nats-Msg-Id": str(new_event_id())})
    after = detected(tenant)
    await js.publish(subject, after.to_json_bytes(), headers={"Nats-Msg-Id": str(new_event_id())})

    rejected = await collect_messages(nats_connection, subjects.face_rejected(tenant), len(hostile), timeout=30)
    reasons = [FaceRejected.model_validate_json(m.data).reason for m in rejected]
    assert len(reasons) == len(hostile), reasons
    assert all(reason.startswith("invalid: ") and len(reason) > len("invalid: ") for reason in reasons), reasons
    assert any("crop is 614404 bytes" in r for r in reasons) and any("has 64 values" in r for r in reasons)
    assert any("control character" in r for r in reasons)
    [refused_stranger] = await collect_messages(nats_connection, subjects.face_rejected(stranger), 1, timeout=30)
    assert "not registered" in FaceRejected.model_validate_json(refused_stranger.data).reason

    announced = await collect_messages(nats_connection, subjects.face_ingested(tenant, "store-1"), 5, timeout=5)
    sources = [FaceIngested.model_validate_json(m.data).source_event_id for m in announced]
    assert sorted(map(str, sources)) == sorted([str(replayed.event_id), str(after.event_id)])

    dead = await collect_messages(nats_connection, f"deadletter.ingest.faces.detected.{tenant}.>", 20, timeout=2)
    assert len(dead) <= len(hostile), "dead letters are bounded by what was sent"
    assert await ingest.crops.keys_under(f"{tenant}/") == sorted(
        f"{tenant}/store-1/{e.captured_at:%Y/%m/%d}/{e.event_id}.jpg" for e in (replayed, after)
    )
