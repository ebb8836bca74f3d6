"""The batch consumer on the real NATS: a backlog is handled in one call and acked; an undecodable message and a
message that keeps failing are dead-lettered alone with their reason; an outage is waited out, never counted; a
durable an older release made with a bounded `max_deliver` is brought to unlimited."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from schemas import FaceMatched, subjects
from services.common.batch_consumer import BatchConsumer, BatchSubscription
from tests.support import new_tenant
from tests.support_events import matched, publish_matched

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


class Recorder:
    """A handler that records the batches it was given and fails as each test asks."""

    def __init__(self, fail: Callable[[Sequence[FaceMatched]], Exception | None] = lambda _: None) -> None:
        self.batches: list[list[FaceMatched]] = []
        self.calls = 0
        self.dead: list[tuple[bytes, str]] = []
        self._fail = fail

    async def handle(self, events: Sequence[FaceMatched]) -> None:
        self.calls += 1
        failure = self._fail(events)
        if failure is not None:
            raise failure
        self.batches.append(list(events))

    async def dead_letter(self, raw: Msg, reason: str) -> None:
        self.dead.append((raw.data, reason))

    def handled(self) -> list[FaceMatched]:
        return [event for batch in self.batches for event in batch]


Start = Callable[..., Awaitable[BatchConsumer[FaceMatched]]]


@pytest.fixture
async def consume(nats_connection: NatsClient) -> AsyncIterator[Start]:
    started: list[BatchConsumer[FaceMatched]] = []

    async def start(
        tenant: str, recorder: Recorder, max_deliveries: int = 3, durable: str | None = None
    ) -> BatchConsumer[FaceMatched]:
        subscription = BatchSubscription(
            subjects.FACES_STREAM,
            durable or f"test-batch-{uuid.uuid4().hex[:12]}",
            f"faces.matched.{tenant}.>",
            FaceMatched,
            max_batch=50,
            max_deliveries=max_deliveries,
        )
        consumer = BatchConsumer("test", subscription, recorder.handle, recorder.dead_letter)
        await consumer.start(nats_connection)
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        await consumer.stop()


async def until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert condition()


def sightings(tenant: str, count: int) -> list[FaceMatched]:
    return [matched(tenant, uuid.uuid4(), AT + timedelta(minutes=i)) for i in range(count)]


async def test_a_backlog_is_handled_in_one_call_and_acked(nats_connection: NatsClient, consume: Start) -> None:
    tenant, recorder = new_tenant(), Recorder()
    events = sightings(tenant, 10)
    await publish_matched(nats_connection, events)
    consumer = await consume(tenant, recorder)
    await until(lambda: len(recorder.handled()) == 10)
    assert len(recorder.batches) == 1 and [e.event_id for e in recorder.batches[0]] == [e.event_id for e in events]
    await consumer.stop()
    assert recorder.dead == []


async def test_an_undecodable_message_is_dead_lettered_alone(nats_connection: NatsClient, consume: Start) -> None:
    tenant, recorder = new_tenant(), Recorder()
    await nats_connection.jetstream().publish(subjects.face_matched(tenant, "store-1"), b'{"not": "a sighting"}')
    await publish_matched(nats_connection, sightings(tenant, 2))
    await consume(tenant, recorder)
    await until(lambda: len(recorder.handled()) == 2 and len(recorder.dead) == 1)
    assert recorder.dead[0][0] == b'{"not": "a sighting"}' and recorder.dead[0][1].startswith("invalid:")


async def test_a_message_that_keeps_failing_is_retried_then_dead_lettered_alone(
    nats_connection: NatsClient, consume: Start
) -> None:
    tenant = new_tenant()
    good, bad = sightings(tenant, 2), sightings(tenant, 1)[0]

    def fail(events: Sequence[FaceMatched]) -> Exception | None:
        return ValueError("cannot fold this one") if any(e.event_id == bad.event_id for e in events) else None

    recorder = Recorder(fail)
    await publish_matched(nats_connection, [good[0], bad, good[1]])
    await consume(tenant, recorder, max_deliveries=2)
    await until(lambda: len(recorder.dead) == 1)
    assert sorted(e.event_id for e in recorder.handled()) == sorted(e.event_id for e in good)
    assert FaceMatched.model_validate_json(recorder.dead[0][0]).event_id == bad.event_id
    assert recorder.dead[0][1].startswith("failed 2 times: ValueError")


async def test_an_outage_is_waited_out_and_never_dead_lettered(nats_connection: NatsClient, consume: Start) -> None:
    tenant = new_tenant()
    outages = iter([ConnectionRefusedError("postgres is restarting")] * 2)
    recorder = Recorder(lambda _: next(outages, None))
    event = sightings(tenant, 1)[0]
    await publish_matched(nats_connection, [event])
    await consume(tenant, recorder, max_deliveries=1)  # one failure that counted would dead-letter it at once
    await until(lambda: len(recorder.handled()) == 1)
    assert recorder.calls == 3 and recorder.dead == []
    assert recorder.handled()[0].event_id == event.event_id


async def test_a_durable_an_older_release_bounded_is_brought_to_unlimited_deliveries(
    nats_connection: NatsClient, consume: Start
) -> None:
    tenant, recorder = new_tenant(), Recorder()
    durable = f"test-batch-{uuid.uuid4().hex[:12]}"
    js = nats_connection.jetstream()
    await js.add_consumer(
        subjects.FACES_STREAM.name,
        config=ConsumerConfig(durable_name=durable, filter_subject=f"faces.matched.{tenant}.>", max_deliver=6),
    )
    await consume(tenant, recorder, durable=durable)
    assert (await js.consumer_info(subjects.FACES_STREAM.name, durable)).config.max_deliver == -1
