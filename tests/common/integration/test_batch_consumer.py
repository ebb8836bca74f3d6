"""The batch consumer (services/common/batch_consumer.py) on the real NATS JetStream: acks after the handler,
refuses invalid messages alone, retries a failing batch message by message, waits outages out."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats.errors
import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig
from pydantic import BaseModel

from devstack.nats_auth import ADMIN_USER
from schemas import subjects
from schemas.subjects import StreamSpec
from services.common.batch_consumer import BatchConsumer, Decoded, GuardPolicy, batch_subscriber, running_consumers
from services.common.bus import InvalidEvent, declare_streams
from tests.support import collect_messages

SERVICE = "batchtest"


class Counted(BaseModel):
    """A stand-in event: its number, and whether the test's handler should fail on it."""

    n: int
    poison: bool = False


@pytest.fixture(scope="module")
async def broker(nats_url: str, nats_users: dict[str, Path]) -> AsyncIterator[NatsBroker]:
    broker = NatsBroker(nats_url, user_credentials=str(nats_users[ADMIN_USER]), logger=None)
    await broker.connect()
    yield broker
    await broker.stop()


@pytest.fixture
async def stream(nats_connection: NatsClient) -> AsyncIterator[StreamSpec]:
    """A stream of its own per test (its subject is also where the dead letters say they came from)."""
    tag = uuid.uuid4().hex[:8]
    spec = StreamSpec(f"BATCHTEST_{tag}", (f"batchtest.{tag}.>",), max_age_seconds=3600)
    await declare_streams(nats_connection, [spec])
    yield spec
    await nats_connection.jetstream().delete_stream(spec.name)


def subject_of(stream: StreamSpec) -> str:
    return stream.subjects[0].replace(">", "events")


async def publish(connection: NatsClient, stream: StreamSpec, payloads: list[bytes]) -> None:
    js = connection.jetstream()
    for payload in payloads:
        await js.publish(subject_of(stream), payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})


def consumer(
    broker: NatsBroker,
    stream: StreamSpec,
    handle: Callable[[list[Decoded[Counted]]], Awaitable[None]],
    max_deliveries: int = 5,
    check: Callable[[Decoded[Counted]], None] | None = None,
) -> BatchConsumer[Counted]:
    return batch_subscriber(
        stream,
        f"batchtest-{stream.name.lower()}",
        stream.subjects[0],
        Counted,
        handle,
        GuardPolicy(SERVICE, max_deliveries, lambda: broker),
        title="test",
        description="test",
        batch_size=16,
        check=check,
    )


async def ack_pending(connection: NatsClient, batch: BatchConsumer[Counted]) -> int:
    info = await connection.jetstream().consumer_info(batch.stream.name, batch.durable)
    return int(info.num_ack_pending or 0) + int(info.num_pending or 0)


async def eventually(condition: Callable[[], Awaitable[bool]], attempts: int = 200) -> bool:
    for _ in range(attempts):
        if await condition():
            return True
        await asyncio.sleep(0.1)
    return False


def numbers(payloads: list[int]) -> list[bytes]:
    return [Counted(n=n).model_dump_json().encode() for n in payloads]


async def test_a_batch_is_acked_only_after_its_handler_returned(
    broker: NatsBroker, nats_connection: NatsClient, stream: StreamSpec
) -> None:
    await publish(nats_connection, stream, numbers(list(range(10))))
    arrived, release = asyncio.Event(), asyncio.Event()
    batches: list[list[int]] = []

    async def handle(batch: list[Decoded[Counted]]) -> None:
        batches.append([item.event.n for item in batch])
        arrived.set()
        await release.wait()

    batch = consumer(broker, stream, handle)
    async with running_consumers(nats_connection, [batch]):
        await asyncio.wait_for(arrived.wait(), 20)
        assert batches == [list(range(10))]  # one batch, in stream order
        assert await ack_pending(nats_connection, batch) == 10  # held, not acked, while the handler runs
        release.set()
        assert await eventually(lambda: _is_zero(ack_pending(nats_connection, batch)))
    assert batches == [list(range(10))]  # nothing redelivered


async def test_invalid_messages_are_dead_lettered_alone_with_the_reason(
    broker: NatsBroker, nats_connection: NatsClient, stream: StreamSpec
) -> None:
    handled: list[int] = []

    async def handle(batch: list[Decoded[Counted]]) -> None:
        handled.extend(item.event.n for item in batch)

    def refuse_thirteen(item: Decoded[Counted]) -> None:
        if item.event.n == 13:
            raise InvalidEvent("13 is refused")

    await publish(nats_connection, stream, [*numbers([1, 2]), b"not json", *numbers([13, 3])])
    batch = consumer(broker, stream, handle, check=refuse_thirteen)
    async with running_consumers(nats_connection, [batch]):
        dead = await collect_messages(nats_connection, subjects.dead_letter(SERVICE, subject_of(stream)), 2)
        assert await eventually(lambda: _is_zero(ack_pending(nats_connection, batch)))
    assert sorted(handled) == [1, 2, 3]
    reasons = {message.data: message.headers["Revisit-Reason"] for message in dead if message.headers}
    assert set(reasons) == {b"not json", numbers([13])[0]}
    assert "Invalid JSON" in reasons[b"not json"] and reasons[numbers([13])[0]] == "invalid: 13 is refused"


async def test_a_failing_batch_is_retried_one_by_one_and_the_poison_dead_lettered(
    broker: NatsBroker, nats_connection: NatsClient, stream: StreamSpec
) -> None:
    calls: list[list[int]] = []
    handled: list[int] = []

    async def handle(batch: list[Decoded[Counted]]) -> None:
        calls.append([item.event.n for item in batch])
        if any(item.event.poison for item in batch):
            raise RuntimeError("poisoned batch")
        handled.extend(item.event.n for item in batch)

    poison = Counted(n=99, poison=True).model_dump_json().encode()
    await publish(nats_connection, stream, [*numbers([1, 2]), poison, *numbers([3])])
    batch = consumer(broker, stream, handle, max_deliveries=2)
    async with running_consumers(nats_connection, [batch]):
        [dead] = await collect_messages(nats_connection, subjects.dead_letter(SERVICE, subject_of(stream)), 1)
        assert await eventually(lambda: _is_zero(ack_pending(nats_connection, batch)))
    assert sorted(handled) == [1, 2, 3]  # the others went through at the first delivery
    assert calls[0] == [1, 2, 99, 3] and calls[1:5] == [[1], [2], [99], [3]]
    assert calls[5:] == [[99]]  # redelivered once after a backoff, then given up
    assert dead.data == poison and dead.headers and "failed 2 times" in dead.headers["Revisit-Reason"]


async def test_an_outage_is_waited_out_past_max_deliveries_never_dead_lettered(
    broker: NatsBroker, nats_connection: NatsClient, stream: StreamSpec
) -> None:
    attempts: list[int] = []
    handled: list[int] = []
    deliveries: list[int] = []

    async def handle(batch: list[Decoded[Counted]]) -> None:
        attempts.append(len(batch))
        if len(attempts) <= 2:  # NATS "restarting" for the first two tries
            raise nats.errors.ConnectionClosedError()
        handled.extend(item.event.n for item in batch)
        deliveries.extend(item.raw.metadata.num_delivered for item in batch if item.raw.metadata)

    await publish(nats_connection, stream, numbers([1, 2, 3]))
    batch = consumer(broker, stream, handle, max_deliveries=1)
    async with running_consumers(nats_connection, [batch]):
        assert await eventually(lambda: _is_true(len(handled) == 3), attempts=300)
        assert await eventually(lambda: _is_zero(ack_pending(nats_connection, batch)))
    assert sorted(handled) == [1, 2, 3]
    assert deliveries == [1, 1, 1]  # waited out in place: no redelivery, so no delivery counted against them
    dead_letters = subjects.dead_letter(SERVICE, subject_of(stream))
    assert await collect_messages(nats_connection, dead_letters, 1, timeout=1) == []


async def _is_zero(count: Awaitable[int]) -> bool:
    return await count == 0


async def _is_true(value: bool) -> bool:
    return value


async def test_a_durable_made_with_a_delivery_limit_is_brought_to_none(
    broker: NatsBroker, nats_connection: NatsClient, stream: StreamSpec
) -> None:
    """A durable an earlier version created (max_deliver = max_deliveries + 1) would stop redelivering a message
    through a long outage: starting the batch consumer lifts the limit, and it consumes from that durable."""
    handled: list[int] = []

    async def handle(batch: list[Decoded[Counted]]) -> None:
        handled.extend(item.event.n for item in batch)

    batch = consumer(broker, stream, handle)
    js = nats_connection.jetstream()
    await js.add_consumer(
        stream.name,
        ConsumerConfig(
            name=batch.durable, durable_name=batch.durable, filter_subject=batch.subject, max_deliver=6, ack_wait=30
        ),
    )
    await publish(nats_connection, stream, numbers([1, 2]))
    async with running_consumers(nats_connection, [batch]):
        info = await js.consumer_info(stream.name, batch.durable)
        assert info.config.max_deliver == -1
        assert await eventually(lambda: _is_true(sorted(handled) == [1, 2]))
