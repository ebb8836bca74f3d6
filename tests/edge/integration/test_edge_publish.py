"""The edge against a real JetStream (the `nats_url` fixture of tests/conftest.py)."""

import asyncio
import uuid

import nats
import pytest
from nats.aio.msg import Msg

from edge.bootstrap import bootstrap
from edge.config import Camera
from edge.outbox import Outbox, OutboxLimits
from edge.publisher import connect_publisher, to_message
from edge.relay import OutboxRelay
from edge.sources import image_folder_frames
from schemas.faces import FaceDetected
from tests.support import connect_admin


@pytest.fixture
def tenant() -> str:
    """A tenant of its own per test, so the subjects read back hold only this test's events."""
    return f"edge-test-{uuid.uuid4().hex[:10]}"


async def read_subject(url: str, subject: str, expected: int) -> list[Msg]:
    connection = await connect_admin(url)
    try:
        subscription = await connection.jetstream().subscribe(subject, ordered_consumer=True)
        messages = []
        for _ in range(expected + 1):
            try:
                messages.append(await subscription.next_msg(timeout=1.0))
            except nats.errors.TimeoutError:
                break
        return messages
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_edge_run_publishes_one_event_per_photo_with_msg_id(
    nats_url, mint_device, tenant, edge_settings, faces_dir, clock_start, tmp_path
):
    settings = edge_settings.model_copy(
        update={
            "nats_url": nats_url,
            "nats_credentials": mint_device(tenant, "s1", ("door",)),
            "outbox_path": tmp_path / "outbox.db",
        }
    )
    camera = Camera(
        tenant_id=tenant, site_id="s1", camera_id="door", source=str(faces_dir / "biden"), fps=5, min_face_px=32
    )
    edge = await bootstrap(settings, [camera], clock_start)
    try:
        assert await edge.run() == 0
    finally:
        await edge.close()
    messages = await read_subject(nats_url, f"faces.detected.{tenant}.s1.door", expected=2)
    events = [FaceDetected.model_validate_json(message.data) for message in messages]
    assert len(events) == 2
    assert [(message.headers or {}).get("Nats-Msg-Id") for message in messages] == [
        str(event.event_id) for event in events
    ]
    assert {event.tenant_id for event in events} == {tenant}
    assert Outbox(settings.outbox_path, OutboxLimits(10, 10_000, 60)).depth == 0


@pytest.mark.asyncio
async def test_outbox_replays_in_order_and_jetstream_drops_a_replayed_duplicate(
    nats_url, nats_admin_credentials, tenant, edge_settings, make_pipeline, faces_dir, clock_start, tmp_path
):
    frames = image_folder_frames(faces_dir / "obama", clock_start, 1.0)
    pipeline = make_pipeline(tracking=False)
    detected = [event for frame in frames for event in pipeline.process(frame)][:3]
    events = [event.model_copy(update={"tenant_id": tenant}) for event in detected]
    outbox = Outbox(tmp_path / "outbox.db", OutboxLimits(100, 10_000_000, 3600))
    for event in events:  # as if written before a crash while NATS was away
        outbox.put(to_message(event))
    publisher = await connect_publisher(nats_url, nats_admin_credentials, 5, 5)
    try:
        relay = OutboxRelay(outbox, publisher)
        run = asyncio.create_task(relay.run())
        assert await relay.drain(10) == 0
        assert (relay.published, relay.duplicates) == (3, 0)
        await relay.send(events[0])  # as if the edge crashed after the PubAck, before the delete
        assert await relay.drain(10) == 0
        run.cancel()
        assert (relay.published, relay.duplicates) == (4, 1)
    finally:
        await publisher.close()
    messages = await read_subject(nats_url, f"faces.detected.{tenant}.>", expected=3)
    assert [(message.headers or {}).get("Nats-Msg-Id") for message in messages] == [
        str(event.event_id) for event in events
    ]
