"""The dead-letter guard on the real NATS (services/common/bus.py): an unreachable dependency is waited out however
many tries it takes and never dead-lettered; a failure of the message itself is dead-lettered at `max_deliveries`;
a dead letter that cannot be stored yet is retried, never dropped.

The outage here is real: the handler publishes to a subject no stream captures yet, which JetStream answers with
no responders (`NoStreamResponseError`, what the matcher saw while NATS restarted); the dependency "returns" when
the test creates the stream."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats.js.api
import pytest
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from schemas.subjects import StreamSpec
from services.common import bus
from services.common.bus import InvalidEvent, InvalidMessageHandler, connect_broker, durable_pull
from services.common.settings import ServiceSettings
from tests.support import collect_messages

SERVICE = "guardtest"
MAX_DELIVERIES = 2


class Scenario:
    """One test's own subjects and streams: `guardin.<id>` consumed, `guardout.<id>` the handler's dependency."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.inbound = StreamSpec(f"GUARDIN_{self.id}", (f"guardin.{self.id}",), max_age_seconds=3600)
        self.outbound = nats.js.api.StreamConfig(name=f"GUARDOUT_{self.id}", subjects=[f"guardout.{self.id}"])
        self.durable = f"guardtest-{self.id}"
        self.tries: list[int] = []
        """The delivery count of each try of the handler."""

    @property
    def dead_letters(self) -> str:
        return f"deadletter.{SERVICE}.guardin.{self.id}"

    async def dependency_returns(self, connection: NatsClient) -> None:
        await connection.jetstream().add_stream(self.outbound)

    async def cleanup(self, connection: NatsClient) -> None:
        js = connection.jetstream()
        for name in (self.inbound.name, f"GUARDOUT_{self.id}"):
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass


@pytest.fixture(autouse=True)
def quick_outage_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's pauses, shortened: what is tested is that it keeps trying, not how long it waits."""
    monkeypatch.setattr(bus, "outage_wait_seconds", lambda attempt: 0.05)
    monkeypatch.setattr(bus, "retry_delay_seconds", lambda deliveries: 0.05)


@pytest.fixture
async def scenario(nats_connection: NatsClient) -> AsyncIterator[Scenario]:
    made = Scenario()
    yield made
    await made.cleanup(nats_connection)


async def running_guarded_consumer(
    nats_url: str,
    credentials: Path,
    scenario: Scenario,
    handle: Callable[[NatsBroker, NatsMessage], Awaitable[None]],
    on_invalid: InvalidMessageHandler | None = None,
) -> NatsBroker:
    settings = ServiceSettings(nats_url=nats_url, nats_credentials=credentials, max_deliveries=MAX_DELIVERIES)
    broker = await connect_broker(settings, SERVICE, [scenario.inbound], on_invalid)
    options = durable_pull(scenario.inbound, scenario.durable, scenario.inbound.subjects[0], MAX_DELIVERIES)

    @broker.subscriber(**options)
    async def on_message(body: bytes, msg: NatsMessage) -> None:
        scenario.tries.append(msg.raw_message.metadata.num_delivered)
        await handle(broker, msg)

    await broker.start()
    return broker


async def publish_to_dependency(broker: NatsBroker, scenario: Scenario, data: bytes) -> None:
    """Fails with NoStreamResponseError (an outage) until the dependency's stream exists."""
    await broker.connection.jetstream().publish(f"guardout.{scenario.id}", data, timeout=2)


async def until(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        await asyncio.sleep(0.05)


async def backlog(connection: NatsClient, scenario: Scenario) -> int:
    info = await connection.jetstream().consumer_info(scenario.inbound.name, scenario.durable)
    return (info.num_pending or 0) + (info.num_ack_pending or 0)


async def stream_messages(connection: NatsClient, name: str) -> int:
    return int((await connection.jetstream().stream_info(name)).state.messages)


async def test_an_outage_longer_than_max_deliveries_is_waited_out_and_never_dead_lettered(
    nats_url: str, nats_admin_credentials: Path, nats_connection: NatsClient, scenario: Scenario
) -> None:
    async def forward(broker: NatsBroker, msg: NatsMessage) -> None:
        await publish_to_dependency(broker, scenario, msg.raw_message.data)

    broker = await running_guarded_consumer(nats_url, nats_admin_credentials, scenario, forward)
    try:
        dead_before = await stream_messages(nats_connection, "DEADLETTER")
        await nats_connection.jetstream().publish(f"guardin.{scenario.id}", b"face", stream=scenario.inbound.name)
        await until(lambda: len(scenario.tries) > 3 * MAX_DELIVERIES, "the handler failing through the outage")
        await scenario.dependency_returns(nats_connection)
        [forwarded] = await collect_messages(nats_connection, f"guardout.{scenario.id}", 1)
        assert forwarded.data == b"face"
        await until_backlog_is_empty(nats_connection, scenario)
    finally:
        await broker.stop()
    assert set(scenario.tries) == {1}, "outage tries are made in place: the delivery count never grew"
    assert await stream_messages(nats_connection, "DEADLETTER") == dead_before
    assert await count_on(nats_connection, scenario.dead_letters) == 0


async def test_a_failing_message_is_dead_lettered_at_max_deliveries(
    nats_url: str, nats_admin_credentials: Path, nats_connection: NatsClient, scenario: Scenario
) -> None:
    async def refuse(broker: NatsBroker, msg: NatsMessage) -> None:
        raise ValueError("this message can never be handled")

    broker = await running_guarded_consumer(nats_url, nats_admin_credentials, scenario, refuse)
    try:
        await nats_connection.jetstream().publish(f"guardin.{scenario.id}", b"poison", stream=scenario.inbound.name)
        [dead] = await collect_messages(nats_connection, scenario.dead_letters, 1, timeout=60)
        await until_backlog_is_empty(nats_connection, scenario)
    finally:
        await broker.stop()
    assert dead.data == b"poison"
    assert "this message can never be handled" in (dead.headers or {})["Revisit-Reason"]
    assert scenario.tries == list(range(1, MAX_DELIVERIES + 1))


async def test_a_rejection_that_cannot_be_stored_is_retried_until_it_is_never_dropped(
    nats_url: str, nats_admin_credentials: Path, nats_connection: NatsClient, scenario: Scenario
) -> None:
    """An invalid message whose rejection cannot be published yet (NATS restarting) stays unacknowledged and comes
    back, more times than any bounded `max_deliver` would allow, until the rejection is stored. Before the fix the
    server stopped redelivering at `max_deliveries + 1` and the message was gone with nothing kept."""
    rejections: list[int] = []

    async def invalid(broker: NatsBroker, msg: NatsMessage) -> None:
        raise InvalidEvent("no such camera")

    async def reject(broker: NatsBroker, raw: Msg, reason: str) -> None:
        rejections.append(raw.metadata.num_delivered)
        await publish_to_dependency(broker, scenario, reason.encode())

    broker = await running_guarded_consumer(nats_url, nats_admin_credentials, scenario, invalid, reject)
    try:
        await nats_connection.jetstream().publish(f"guardin.{scenario.id}", b"bad", stream=scenario.inbound.name)
        await until(lambda: len(rejections) > MAX_DELIVERIES + 1, "the rejection failing past any bounded max_deliver")
        await scenario.dependency_returns(nats_connection)
        [rejected] = await collect_messages(nats_connection, f"guardout.{scenario.id}", 1, timeout=60)
        await until_backlog_is_empty(nats_connection, scenario)
    finally:
        await broker.stop()
    assert rejected.data == b"invalid: no such camera"


async def test_an_existing_consumer_with_a_bounded_max_deliver_is_made_unlimited_at_start(
    nats_url: str, nats_admin_credentials: Path, nats_connection: NatsClient, scenario: Scenario
) -> None:
    """nats-py binds to an existing durable as it is; `start_consuming` edits what an older release created."""
    js = nats_connection.jetstream()
    await bus.declare_streams(nats_connection, [scenario.inbound])
    old = nats.js.api.ConsumerConfig(
        name=scenario.durable,
        durable_name=scenario.durable,
        filter_subject=scenario.inbound.subjects[0],
        ack_policy=nats.js.api.AckPolicy.EXPLICIT,
        ack_wait=30,
        max_deliver=MAX_DELIVERIES + 1,
    )
    await js.add_consumer(scenario.inbound.name, config=old)
    settings = ServiceSettings(
        nats_url=nats_url, nats_credentials=nats_admin_credentials, max_deliveries=MAX_DELIVERIES
    )
    broker = await connect_broker(settings, SERVICE, [scenario.inbound])
    options = durable_pull(scenario.inbound, scenario.durable, scenario.inbound.subjects[0], MAX_DELIVERIES)

    @broker.subscriber(**options)
    async def on_message(body: bytes) -> None:
        pass

    try:
        await bus.start_consuming(broker)
    finally:
        await broker.stop()
    info = await js.consumer_info(scenario.inbound.name, scenario.durable)
    assert info.config.max_deliver == bus.UNLIMITED_DELIVERIES


async def until_backlog_is_empty(connection: NatsClient, scenario: Scenario) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while await backlog(connection, scenario):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"consumer {scenario.durable} still has a backlog")
        await asyncio.sleep(0.1)


async def count_on(connection: NatsClient, subject: str) -> int:
    """Messages stored on `subject` (the DEADLETTER stream's own count per subject)."""
    info = await connection.jetstream().stream_info("DEADLETTER", subjects_filter=subject)
    return sum((info.state.subjects or {}).values())
