"""The outbox relay with a publisher fake: a message refused for good is set aside, transient failures retry."""

import asyncio

import nats
import pytest

from edge.outbox import Outbox, OutboxLimits
from edge.publisher import OutgoingMessage, PublishRefused
from edge.relay import OutboxRelay


class FakeBus:
    """Refuses `poisoned` event ids for good, fails `flaky` ones once as if NATS were away, takes the rest."""

    def __init__(self, poisoned: set[str], flaky: set[str]) -> None:
        self.poisoned, self.flaky = poisoned, set(flaky)
        self.attempts: list[str] = []
        self.accepted: list[str] = []

    async def publish(self, message: OutgoingMessage) -> bool:
        self.attempts.append(message.event_id)
        if message.event_id in self.poisoned:
            raise PublishRefused("message of 2000000 bytes with headers is over the server's max_payload of 1048576")
        if message.event_id in self.flaky:
            self.flaky.discard(message.event_id)
            raise nats.errors.TimeoutError
        self.accepted.append(message.event_id)
        return False


def message(n: int) -> OutgoingMessage:
    return OutgoingMessage("faces.detected.t.s.c", f"event-{n}", b"{}")


@pytest.mark.asyncio
async def test_a_refused_event_is_moved_aside_and_the_events_after_it_are_published(tmp_path):
    outbox = Outbox(tmp_path / "o.db", OutboxLimits(100, 10_000, 3600))
    for n in range(5):
        outbox.put(message(n))
    bus = FakeBus(poisoned={"event-1"}, flaky={"event-3"})
    relay = OutboxRelay(outbox, bus)
    run = asyncio.create_task(relay.run())
    try:
        assert await relay.drain(10) == 0
    finally:
        run.cancel()
    assert bus.accepted == ["event-0", "event-2", "event-3", "event-4"]  # in order, the flaky one retried
    assert bus.attempts.count("event-1") == 1  # refused for good: never tried again
    assert bus.attempts.count("event-3") == 2
    assert outbox.dead() == [
        ("event-1", "message of 2000000 bytes with headers is over the server's max_payload of 1048576")
    ]
    assert relay.published == 4
