"""A durable JetStream pull consumer that hands its handler whole fetches instead of one message at a time.

FastStream handles each message on its own (decode, middleware, a worker task, an ack), which costs more than
folding a sighting into a visit once the folding is batched. `BatchConsumer` fetches up to `max_batch` messages
with nats-py, decodes them into the subscription's event model, calls the handler once with all of them and acks
each after it returned (so after the handler's own commit). The rules are the dead-letter guard's
(services/common/bus.py):

- a message that does not decode, or whose handling raises `InvalidEvent`, goes to the dead-letter subject with
  the reason and is acked;
- a batch that fails is handled again one message at a time, so one bad message fails alone; a message that
  fails is redelivered with backoff (`retry_delay_seconds`) and dead-lettered at `max_deliveries`;
- a failure that is an unreachable dependency (`outage.is_outage`: NATS, Postgres, S3 down or restarting) is
  waited out in place: the batch is tried again after `outage_wait_seconds`, with a progress signal before each
  pause so JetStream does not redeliver it meanwhile, counted as outcome `outage`, never dead-lettered and
  never counted against `max_deliveries`;
- a dead letter is acked only once stored (if NATS cannot take it the message is nak'ed and comes back), and
  the durable consumer's `max_deliver` is unlimited, set so at start on a durable an older release made: the
  consumer alone decides when a message is dead-lettered.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import nats.errors
import nats.js.api
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError

from schemas.base import Event
from schemas.subjects import StreamSpec
from services.common.bus import (
    ACK_WAIT_SECONDS,
    FETCH_WINDOW_SECONDS,
    OUTAGE_LOG_EVERY,
    UNLIMITED_DELIVERIES,
    InvalidEvent,
    outage_wait_seconds,
    retry_delay_seconds,
    settle,
    signal_progress,
)
from services.common.logging import get_logger
from services.common.metrics import HANDLER_SECONDS, MESSAGES_CONSUMED, count_consumed_from_zero, subject_family
from services.common.outage import is_outage

log = get_logger(__name__)
E = TypeVar("E", bound=Event)
FETCH_RETRY_MAX_SECONDS = 30.0

DeadLetter = Callable[[Msg, str], Awaitable[None]]
"""Sends a raw message to the service's dead-letter subject with the reason (bus.publish_dead_letter)."""


@dataclass(frozen=True)
class BatchSubscription(Generic[E]):
    """What to consume: the stream, the durable consumer's name and filter, the event model, and how much."""

    stream: StreamSpec
    durable: str
    subject: str
    model: type[E]
    max_batch: int
    max_deliveries: int
    in_flight: int = 1
    """Batches handled at once (more only where the handler orders concurrent batches itself, with locks)."""
    max_wait: float = FETCH_WINDOW_SECONDS
    """How long a fetch waits for messages when none are there (what is there is taken at once)."""


class BatchConsumer(Generic[E]):
    def __init__(
        self,
        service: str,
        subscription: BatchSubscription[E],
        handle: Callable[[Sequence[E]], Awaitable[object]],
        dead_letter: DeadLetter,
    ) -> None:
        self._service, self._subscription, self._handle, self._dead_letter = service, subscription, handle, dead_letter
        self._family = subject_family(subscription.subject)
        self._slots = asyncio.Semaphore(subscription.in_flight)
        self._handling: set[asyncio.Task[None]] = set()
        self._fetching: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self, connection: NatsClient) -> None:
        """Create the durable consumer (or bring an existing one to an unlimited `max_deliver`) and start
        fetching."""
        spec = self._subscription
        js = connection.jetstream()
        await _unlimit_deliveries(js, spec.stream.name, spec.durable)
        subscription = await js.pull_subscribe(
            spec.subject,
            durable=spec.durable,
            stream=spec.stream.name,
            config=nats.js.api.ConsumerConfig(
                ack_policy=nats.js.api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_SECONDS, max_deliver=UNLIMITED_DELIVERIES
            ),
        )
        count_consumed_from_zero(self._service, [spec.subject])
        self._fetching = asyncio.create_task(self._fetch_loop(subscription))

    async def stop(self) -> None:
        """Stop fetching and let the batches being handled finish (their messages are acked or redelivered)."""
        self._stopping.set()
        if self._fetching is not None:
            self._fetching.cancel()
            await asyncio.gather(self._fetching, return_exceptions=True)
        await asyncio.gather(*self._handling, return_exceptions=True)

    async def _fetch_loop(self, subscription: nats.js.JetStreamContext.PullSubscription) -> None:
        """Fetch the next batch while earlier ones are being handled; it is handed on when fewer than `in_flight`
        are, so with one in flight batches are handled in the order they were fetched."""
        pause = 1.0
        while not self._stopping.is_set():
            try:
                messages = await subscription.fetch(self._subscription.max_batch, timeout=self._subscription.max_wait)
            except nats.errors.TimeoutError:
                continue
            except Exception as error:  # never ends the loop: a consumer that stopped would look healthy
                if is_outage(error):
                    log.warning("batch_fetch_waiting_out_outage", error=repr(error))
                else:
                    log.error("batch_fetch_failed_will_retry", error=repr(error))
                await asyncio.sleep(pause)
                pause = min(pause * 2, FETCH_RETRY_MAX_SECONDS)
                continue
            pause = 1.0
            await self._slots.acquire()
            task = asyncio.create_task(self._handle_released(messages))
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)

    async def _handle_released(self, messages: list[Msg]) -> None:
        try:
            await self.handle_messages(messages)
        except Exception as error:  # logged, never lost: unacked messages come back after the ack wait
            log.error("batch_handling_failed", error=repr(error), messages=len(messages))
        finally:
            self._slots.release()

    async def handle_messages(self, messages: Sequence[Msg]) -> None:
        """Decode, handle as one batch, ack; the rules of the module's docstring for what fails."""
        decoded: list[tuple[Msg, E]] = []
        for message in messages:
            try:
                decoded.append((message, self._subscription.model.model_validate_json(message.data)))
            except ValidationError as error:
                await self._send_to_dead_letter(message, f"invalid: {error}")
        if not decoded:
            return
        started = time.perf_counter()
        try:
            failure = await self._handle_waiting_out_outages(decoded)
        finally:
            HANDLER_SECONDS.labels(self._service, self._family).observe(time.perf_counter() - started)
        if failure is None:
            await self._ack_all([message for message, _ in decoded])
            return
        if len(decoded) == 1:
            await self._failed(decoded[0][0], failure)
            return
        for one in decoded:  # one bad message fails alone
            failure = await self._handle_waiting_out_outages([one])
            if failure is None:
                await self._ack_all([one[0]])
            else:
                await self._failed(one[0], failure)

    async def _handle_waiting_out_outages(self, decoded: Sequence[tuple[Msg, E]]) -> Exception | None:
        """Handle the events; an outage is waited out in place (each pause counted, the messages' ack wait
        renewed), any other failure returned."""
        attempt = 0
        while True:
            try:
                await self._handle([event for _, event in decoded])
            except Exception as error:
                if not is_outage(error) or self._stopping.is_set():
                    return error
                attempt += 1
                MESSAGES_CONSUMED.labels(self._service, self._family, "outage").inc(len(decoded))
                if attempt == 1 or attempt % OUTAGE_LOG_EVERY == 0:
                    log.warning("dependency_unavailable_waiting", attempt=attempt, error=repr(error)[:300])
                for message, _ in decoded:
                    await signal_progress(message)
                await asyncio.sleep(outage_wait_seconds(attempt))
                continue
            if attempt:
                log.info("dependency_back", attempts=attempt)
            return None

    async def _failed(self, message: Msg, error: Exception) -> None:
        if isinstance(error, InvalidEvent):
            await self._send_to_dead_letter(message, f"invalid: {error}")
            return
        if is_outage(error):  # only while stopping: redelivered after the ack wait, not counted
            return
        deliveries = message.metadata.num_delivered if message.metadata else 1
        if deliveries >= self._subscription.max_deliveries:
            log.error("handler_failed_dead_lettered", deliveries=deliveries, error=repr(error))
            await self._send_to_dead_letter(message, f"failed {deliveries} times: {error!r}")
            return
        log.warning("handler_failed_will_retry", deliveries=deliveries, error=repr(error))
        await settle(lambda: message.nak(delay=retry_delay_seconds(deliveries)), "nak")
        MESSAGES_CONSUMED.labels(self._service, self._family, "retried").inc()

    async def _send_to_dead_letter(self, message: Msg, reason: str) -> None:
        """Ack only once the dead letter is stored: if NATS cannot take it, the message comes back."""
        try:
            await self._dead_letter(message, reason)
        except Exception as error:
            if not is_outage(error):
                raise
            log.warning("dead_letter_failed_will_retry", error=repr(error)[:300])
            deliveries = message.metadata.num_delivered if message.metadata else 1
            await settle(lambda: message.nak(delay=outage_wait_seconds(deliveries)), "nak")
            MESSAGES_CONSUMED.labels(self._service, self._family, "outage").inc()
            return
        await settle(message.ack, "ack")
        MESSAGES_CONSUMED.labels(self._service, self._family, "dead_lettered").inc()

    async def _ack_all(self, messages: Sequence[Msg]) -> None:
        for message in messages:
            await settle(message.ack, "ack")
        MESSAGES_CONSUMED.labels(self._service, self._family, "ok").inc(len(messages))


async def _unlimit_deliveries(js: nats.js.JetStreamContext, stream: str, durable: str) -> None:
    """An existing durable keeps its config when nats-py binds to it: one an older release made with a bounded
    `max_deliver` is brought to unlimited (NATS 2.10+ edits it in place), as `bus.align_durable_consumers` does
    for FastStream's subscribers."""
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        return
    if info.config.max_deliver != UNLIMITED_DELIVERIES:
        await js.add_consumer(stream, config=replace(info.config, max_deliver=UNLIMITED_DELIVERIES))
        log.info("consumer_max_deliver_updated", durable=durable, was=info.config.max_deliver)
