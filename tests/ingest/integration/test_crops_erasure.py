"""Ingest's step of the erasure saga, against real NATS JetStream and a real S3 server."""

import asyncio
import uuid
from collections.abc import Callable

from nats.aio.client import Client as NatsClient

from schemas import (
    AuditEntryRecorded,
    CropsErasureRequested,
    FaceDetected,
    FaceIngested,
    OperationStepCompleted,
    subjects,
)
from schemas.ids import derive_event_id, new_event_id
from services.ingest.bootstrap import Ingest
from services.ingest.consumers import DURABLE_CROPS_ERASURE
from tests.ingest.integration.conftest import registered_tenant
from tests.support import collect_messages

Detected = Callable[..., FaceDetected]


async def store_crops(connection: NatsClient, detected: Detected, tenant: str, count: int) -> list[str]:
    """Crops stored the normal way: FaceDetected through ingest's consumer; their keys from FaceIngested."""
    js = connection.jetstream()
    for _ in range(count):
        event = detected(tenant)
        subject = subjects.face_detected(tenant, "store-1", "entrance")
        await js.publish(subject, event.to_json_bytes(), headers={"Nats-Msg-Id": str(event.event_id)})
    messages = await collect_messages(connection, subjects.face_ingested(tenant, "store-1"), count)
    return sorted(FaceIngested.model_validate_json(m.data).crop_key or "" for m in messages)


def erasure_request(tenant: str, keys: list[str], batch: int = 0) -> CropsErasureRequested:
    return CropsErasureRequested(
        tenant_id=tenant,
        operation_id=new_event_id(),
        person_id=uuid.uuid4(),
        batch=batch,
        batches=batch + 1,
        crop_keys=keys,
    )


async def request_erasure(connection: NatsClient, request: CropsErasureRequested, msg_id: str) -> int:
    """Publish the request as identity would (under `msg_id`); its stream sequence."""
    subject = subjects.identity_event("crops_erasure_requested", request.tenant_id)
    ack = await connection.jetstream().publish(subject, request.to_json_bytes(), headers={"Nats-Msg-Id": msg_id})
    assert not ack.duplicate
    return ack.seq


async def wait_until_acked(connection: NatsClient, sequence: int, timeout: float = 20) -> None:
    """Until ingest's erasure consumer has acked every message up to `sequence` of the IDENTITY stream."""
    js = connection.jetstream()
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        info = await js.consumer_info(subjects.IDENTITY_STREAM.name, DURABLE_CROPS_ERASURE)
        if info.ack_floor.stream_seq >= sequence:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"ingest did not ack IDENTITY message {sequence} within {timeout}s")


async def test_crops_are_erased_and_the_step_completed_once_even_when_redelivered_under_a_new_id(
    ingest: Ingest, nats_connection: NatsClient, detected: Detected
) -> None:
    tenant = await registered_tenant(nats_connection)
    keys = await store_crops(nats_connection, detected, tenant, 3)
    assert await ingest.crops.keys_under(f"{tenant}/") == keys
    never_stored = f"{tenant}/store-1/2026/11/02/{new_event_id()}.jpg"  # a missing crop counts as deleted
    request = erasure_request(tenant, [*keys, never_stored], batch=2)
    step_subject = subjects.operation_step("ingest", tenant)
    announced = await nats_connection.subscribe(step_subject)  # core NATS: sees the repeat JetStream drops

    await request_erasure(nats_connection, request, str(request.event_id))
    first = await announced.next_msg(timeout=20)
    assert await ingest.crops.keys_under(f"{tenant}/") == []
    step = OperationStepCompleted.model_validate_json(first.data)
    assert step.event_id == derive_event_id(request.operation_id, "ingest/crops/2")
    assert (step.operation_id, step.service, step.step, step.changed) == (request.operation_id, "ingest", "crops/2", 4)

    sequence = await request_erasure(nats_connection, request, str(new_event_id()))  # same JSON, new Nats-Msg-Id
    await wait_until_acked(nats_connection, sequence)
    repeat = await announced.next_msg(timeout=5)
    await announced.unsubscribe()
    assert repeat.data == first.data
    in_stream = await collect_messages(nats_connection, step_subject, 2, timeout=2)
    assert [m.data for m in in_stream] == [first.data]

    [audited] = await collect_messages(nats_connection, subjects.audit_entry("ingest", "crops_erased", tenant), 2, 2)
    entry = AuditEntryRecorded.model_validate_json(audited.data)
    assert (entry.service, entry.actor, entry.action) == ("ingest", "ingest", "crops_erased")
    assert entry.resource == f"person/{request.person_id}"
    assert entry.details == {"operation_id": str(request.operation_id), "batch": 2, "count": 4}
    assert entry.event_id == derive_event_id(request.operation_id, "ingest/crops/2/audit")
    assert not any(key in audited.data.decode() for key in keys)  # how many, never which


async def test_a_batch_naming_another_tenants_crop_is_refused_and_nothing_is_deleted(
    ingest: Ingest, nats_connection: NatsClient, detected: Detected
) -> None:
    tenant, other = await registered_tenant(nats_connection), await registered_tenant(nats_connection)
    [own] = await store_crops(nats_connection, detected, tenant, 1)
    [foreign] = await store_crops(nats_connection, detected, other, 1)
    request = erasure_request(tenant, [own, foreign])
    sequence = await request_erasure(nats_connection, request, str(request.event_id))

    dead_subject = subjects.dead_letter("ingest", subjects.identity_event("crops_erasure_requested", tenant))
    [dead] = await collect_messages(nats_connection, dead_subject, 1)
    assert dead.data == request.to_json_bytes()
    reason = (dead.headers or {})["Revisit-Reason"]
    assert "outside tenant" in reason and "nothing was deleted" in reason and foreign not in reason
    await wait_until_acked(nats_connection, sequence)
    assert await ingest.crops.keys_under(f"{tenant}/") == [own]
    assert await ingest.crops.keys_under(f"{other}/") == [foreign]
    assert await collect_messages(nats_connection, subjects.operation_step("ingest", tenant), 1, timeout=1) == []
