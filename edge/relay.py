"""Moves events from the outbox to JetStream in order, and keeps trying while NATS is away.

Transient failures (NATS away, a timeout) stop the batch and are retried with backoff, forever: order is kept.
An event the bus refuses for good is moved aside (the outbox's dead table) and the next one goes out."""

import asyncio
import contextlib

import nats

from edge.metrics import EVENTS
from edge.outbox import Outbox
from edge.publisher import MessagePublisher, PublishRefused, to_message
from plumbing.logging import get_logger
from schemas.faces import FaceDetected

log = get_logger(__name__)

BATCH = 64
RETRY_MAX_SECONDS = 10.0


class OutboxRelay:
    """The pipeline's `EventSink`: `send` stores durably; `run` publishes oldest first, deletes on PubAck."""

    def __init__(self, outbox: Outbox, publisher: MessagePublisher) -> None:
        self._outbox, self._publisher = outbox, publisher
        self._wake = asyncio.Event()
        self._emptied = asyncio.Event()
        self.published = 0
        self.duplicates = 0
        self.last_error: str | None = None

    async def send(self, event: FaceDetected) -> None:
        self._outbox.put(to_message(event))
        EVENTS.labels("queued").inc()
        self._emptied.clear()
        self._wake.set()

    async def run(self) -> None:
        """Forever: publish what waits (in order), back off while publishing fails, sleep while empty."""
        delay = 0.5
        while True:
            self._outbox.enforce_limits()
            if self._outbox.depth == 0:
                self._emptied.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if await self._publish_batch():
                delay = 0.5
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _publish_batch(self) -> bool:
        """Publish the oldest messages one by one; False at the first transient failure (order is kept)."""
        for row in self._outbox.oldest(BATCH):
            try:
                duplicate = await self._publisher.publish(row.message)
            except PublishRefused as refused:
                self._outbox.move_aside(row.seq, str(refused))
                continue
            except (TimeoutError, OSError, nats.errors.Error) as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("publish_failed_will_retry", error=self.last_error, depth=self._outbox.depth)
                return False
            self._outbox.delete(row.seq)
            self.last_error = None
            self.published += 1
            self.duplicates += duplicate
            EVENTS.labels("duplicate" if duplicate else "published").inc()
        return True

    async def drain(self, timeout_seconds: float) -> int:
        """Wait until the outbox is empty or the timeout passes; the number of events still waiting."""
        if self._outbox.depth:
            self._emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), timeout_seconds)
        return self._outbox.depth
