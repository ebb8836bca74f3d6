"""The edge against a JetStream whose max_payload is 32 KiB: crops are made to fit, and a message the server
refuses for good is set aside while the events behind it are published."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import cv2
import nats
import numpy as np
import pytest

from devstack.infra import free_port, start_nats
from edge.outbox import Outbox, OutboxLimits
from edge.publisher import JetStreamPublisher, OutgoingMessage, connect_publisher, to_message
from edge.relay import OutboxRelay
from edge.sources import image_folder_frames
from schemas import subjects
from schemas.faces import FaceDetected
from services.common.bus import declare_streams

MAX_PAYLOAD = 32 * 1024


@pytest.fixture(scope="module")
def small_nats(tmp_path_factory: pytest.TempPathFactory, nats_trust, nats_admin_credentials: Path) -> Iterator[str]:
    """A server of its own with a small max_payload, the FACES_DETECTED stream declared as ingest would."""
    root = tmp_path_factory.mktemp("small-nats")
    url, server = start_nats(root / "data", root / "logs", free_port(), nats_trust, max_payload=MAX_PAYLOAD)
    try:
        asyncio.run(declare_faces_detected(url, nats_admin_credentials))
        yield url
    finally:
        server.stop()


async def declare_faces_detected(url: str, credentials: Path) -> None:
    connection = await nats.connect(url, user_credentials=str(credentials))
    try:
        await declare_streams(connection, [subjects.FACES_DETECTED_STREAM])
    finally:
        await connection.close()


@pytest.fixture
async def publisher(small_nats: str, nats_admin_credentials: Path) -> AsyncIterator[JetStreamPublisher]:
    publisher = await connect_publisher(small_nats, nats_admin_credentials, 5, 5)
    try:
        yield publisher
    finally:
        await publisher.close()


def large_face_event(make_pipeline, faces_dir: Path, clock_start, max_payload: int | None) -> FaceDetected:
    """The event of a 2333x1434 portrait, whose face crop is about 46 KiB at JPEG quality 90 (62 KiB in base64)."""
    pipeline = make_pipeline(tracking=False)
    if max_payload is not None:
        pipeline.limit_payload(max_payload)
    frames = [frame for frame in image_folder_frames(faces_dir / "obama", clock_start, 1.0) if "obama_3" in frame.name]
    [event] = pipeline.process(frames[0])
    return event.model_copy(update={"tenant_id": f"limit-{uuid.uuid4().hex[:10]}"})  # a subject of its own


async def stream_payloads(url: str, credentials: Path, subject: str, expected: int) -> list[bytes]:
    connection = await nats.connect(url, user_credentials=str(credentials))
    try:
        subscription = await connection.jetstream().subscribe(subject, ordered_consumer=True)
        payloads = []
        for _ in range(expected + 1):
            try:
                payloads.append((await subscription.next_msg(timeout=1.0)).data)
            except nats.errors.TimeoutError:
                break
        return payloads
    finally:
        await connection.close()


async def relay_all(outbox: Outbox, publisher: JetStreamPublisher) -> None:
    relay = OutboxRelay(outbox, publisher)
    run = asyncio.create_task(relay.run())
    try:
        assert await relay.drain(10) == 0
    finally:
        run.cancel()


@pytest.mark.asyncio
async def test_an_oversized_crop_is_made_smaller_and_published(
    small_nats, publisher, make_pipeline, faces_dir, clock_start, tmp_path, nats_admin_credentials
):
    assert publisher.max_payload == MAX_PAYLOAD  # read from the server's INFO
    unlimited = large_face_event(make_pipeline, faces_dir, clock_start, None)
    assert unlimited.crop_jpeg is not None and len(unlimited.to_json_bytes()) > MAX_PAYLOAD
    event = large_face_event(make_pipeline, faces_dir, clock_start, publisher.max_payload)
    outbox = Outbox(tmp_path / "outbox.db", OutboxLimits(100, 10_000_000, 3600))
    outbox.put(to_message(event))
    await relay_all(outbox, publisher)
    [payload] = await stream_payloads(small_nats, nats_admin_credentials, to_message(event).subject, 1)
    published = FaceDetected.model_validate_json(payload)
    assert len(payload) <= MAX_PAYLOAD and published.crop_jpeg is not None
    crop = cv2.imdecode(np.frombuffer(published.crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and min(crop.shape[:2]) >= 100  # still a face to look at
    assert outbox.dead() == []


@pytest.mark.asyncio
async def test_a_message_over_max_payload_is_set_aside_and_the_next_is_published(
    small_nats, publisher, make_pipeline, faces_dir, clock_start, tmp_path, nats_admin_credentials
):
    event = large_face_event(make_pipeline, faces_dir, clock_start, MAX_PAYLOAD)
    subject = to_message(event).subject
    outbox = Outbox(tmp_path / "outbox.db", OutboxLimits(100, 10_000_000, 3600))
    outbox.put(OutgoingMessage(subject, "written-by-an-older-edge", b"{" * (MAX_PAYLOAD + 1)))
    outbox.put(OutgoingMessage(subject, "just-under-the-limit-but-not-with-headers", b"{" * (MAX_PAYLOAD - 10)))
    outbox.put(to_message(event))
    await relay_all(outbox, publisher)
    dead = outbox.dead()
    assert [event_id for event_id, _ in dead] == [
        "written-by-an-older-edge",
        "just-under-the-limit-but-not-with-headers",
    ]
    assert all(f"over the server's max_payload of {MAX_PAYLOAD}" in reason for _, reason in dead)
    payloads = await stream_payloads(small_nats, nats_admin_credentials, subject, 2)
    assert [FaceDetected.model_validate_json(p).event_id for p in payloads] == [event.event_id]
    assert publisher.connected  # the server never saw an oversized message, so it kept the connection
