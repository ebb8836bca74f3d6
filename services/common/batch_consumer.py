"""Batch consumers: a durable pull consumer whose handler gets a whole fetched batch at once.

Why: measured on the pipeline bench (docs/BENCHMARKS.md, "End-to-end pipeline"), a message handled alone through
FastStream costs its decode, middleware chain, a thread-pool hop for the message's context, and a Postgres
transaction and NATS flush of its own: most of ingest's, identity's and audit's CPU per event. Here one fetch of
up to `batch_size` messages is decoded and validated message by message, handed to the service's handler as one
list (one transaction, one set-based statement, publications awaited together), and each message is acked after
the handler returned, so after its commit. The subscription is nats-py's own pull subscription (its fetch returns as
soon as some messages are there), started by the service's bootstrap and stopped when HTTP shuts down.

The guard rules (STYLE rule 5, `services/common/outage.py`), applied per message:
- a message that does not validate, or that `check` refuses (`InvalidEvent`), goes to the service's `on_invalid`
  (by default the dead-letter subject) with the reason and is acked; the rest of the batch goes on;
- if the handler raises because a dependency is unreachable (`services/common/outage.py`), the batch waits the
  outage out in place, as the FastStream guard does (`services/common/bus.py`): the handler is tried again after
  0.5, 1, 2 ... 10 s, each message's ack wait renewed before each pause, however long the outage lasts, counted as
  outcome `outage` and never dead-lettered; so a delivery count grows only with failures of the message itself,
  and only those bring it to `max_deliveries` (while stopping, the batch is left unacked for redelivery instead);
- if it raises for another reason, the batch is handled again one message at a time, so one bad message fails
  alone: it is retried with backoff and dead-lettered after `max_deliveries`, the others are acked.

Handlers must be idempotent on the event id (a redelivery, under any `Nats-Msg-Id`, changes nothing) and must
cope with the same event twice in one batch. Batches are handled one after another per subscriber, in the order
fetched, so a handler that appends (audit's hash chain) sees the order it always did (a message retried after a
failure comes back later, as it did before).
"""

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from fastapi import FastAPI
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import BadRequestError
from pydantic import BaseModel, ValidationError

from schemas.subjects import StreamSpec
from services.common.bus import (
    ACK_WAIT_SECONDS,
    FETCH_WINDOW_SECONDS,
    OUTAGE_LOG_EVERY,
    InvalidEvent,
    InvalidMessageHandler,
    outage_wait_seconds,
    publish_dead_letter,
    retry_delay_seconds,
    settle,
    signal_progress,
    store_then_ack,
)
from services.common.logging import get_logger
from services.common.metrics import HANDLER_SECONDS, MESSAGES_CONSUMED, count_consumed_from_zero, subject_family
from services.common.outage import is_outage

log = get_logger(__name__)
IDLE_WAIT_SECONDS = 2.0
"""How long one pull waits for a message on a quiet stream (it returns as soon as one comes)."""
EventT = TypeVar("EventT", bound=BaseModel)


@dataclass(frozen=True)
class Decoded(Generic[EventT]):
    """One message of a batch: the validated event and the message it came in (subject, headers, metadata)."""

    event: EventT
    raw: Msg


BatchHandler = Callable[[list[Decoded[EventT]]], Awaitable[None]]
"""What a service does with a batch: everything durable before it returns (the messages are acked then)."""

MessageCheck = Callable[[Decoded[EventT]], None]
"""A service's checks beyond the schema, per message: raises `InvalidEvent` with the reason."""


@dataclass(frozen=True)
class GuardPolicy:
    """How a service's consumers treat failures: where invalid messages go and when a failing one gives up."""

    service: str
    max_deliveries: int
    broker_ref: Callable[[], NatsBroker]
    on_invalid: InvalidMessageHandler | None = None


@dataclass
class BatchConsumer(Generic[EventT]):
    """A durable pull consumer on `subject` that hands `handle` batches of up to `batch_size` events.

    Built by `register_consumers` without a connection (so the AsyncAPI document can describe it), started by the
    service's bootstrap once NATS is connected, stopped before the connection is drained."""

    stream: StreamSpec
    durable: str
    subject: str
    model: type[EventT]
    handle: BatchHandler[EventT]
    policy: GuardPolicy
    title: str
    description: str
    batch_size: int = 64
    check: MessageCheck[EventT] | None = None
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _stopping: bool = field(default=False, init=False, repr=False)
    _handling: bool = field(default=False, init=False, repr=False)
    _quiet: bool = field(default=False, init=False, repr=False)

    async def start(self, connection: NatsClient) -> None:
        count_consumed_from_zero(self.policy.service, [self.subject])
        subscription = await self._subscribe(connection.jetstream())
        self._stopping = False
        self._task = asyncio.create_task(self._run(subscription), name=f"batch-consumer-{self.durable}")

    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        """Create the durable, or bring one that exists (made by an earlier version) to this configuration, then
        bind to it. The update matters: a durable created with a `max_deliver` would stop redelivering a message
        whose dependency stayed unreachable through that many deliveries."""
        config = ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_SECONDS,
            # no limit: every message is acked, naked or dead-lettered here, and an outage is waited out
            # however many deliveries it takes
            max_deliver=-1,
            max_ack_pending=max(1000, 4 * self.batch_size),
        )
        try:
            await js.add_consumer(self.stream.name, config)
        except BadRequestError as error:  # a setting the server will not change on an existing durable
            log.warning("consumer_config_kept", durable=self.durable, error=str(error))
        return await js.pull_subscribe_bind(durable=self.durable, stream=self.stream.name)

    async def stop(self) -> None:
        """Finish the batch in hand (its messages acked), then stop fetching."""
        self._stopping = True
        if self._task is None:
            return
        if not self._handling:  # waiting for messages: nothing in hand to finish
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self, subscription: JetStreamContext.PullSubscription) -> None:
        try:
            while not self._stopping:
                messages = await self._fetch(subscription)
                if messages:
                    try:
                        await self._consume(messages)
                    finally:
                        self._handling = False
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _fetch(self, subscription: JetStreamContext.PullSubscription) -> list[Msg]:
        """While messages flow: up to `batch_size`, returned as soon as some are there or after the fetch window.
        On a quiet stream: one pull for a single message, which waits up to IDLE_WAIT_SECONDS and returns the moment
        one comes (a batch pull would poll twice per window, and hold the first message until the window closed)."""
        size, wait = (1, IDLE_WAIT_SECONDS) if self._quiet else (self.batch_size, FETCH_WINDOW_SECONDS)
        try:
            messages = await subscription.fetch(size, timeout=wait)
        except TimeoutError:
            messages = []
        except Exception as error:  # the loop must outlive any failure; NATS reconnects on its own
            log.warning("batch_fetch_failed", durable=self.durable, error=repr(error), outage=is_outage(error))
            await asyncio.sleep(FETCH_WINDOW_SECONDS)
            messages = []
        self._quiet = not messages
        self._handling = bool(messages)  # from here `stop` lets the batch finish
        return messages

    async def _consume(self, messages: list[Msg]) -> None:
        try:
            await consume_batch(messages, self.model, self.handle, self.policy, self.check, lambda: self._stopping)
        except Exception as error:  # unacked: redelivered after the ack wait
            log.error("batch_not_settled", durable=self.durable, error=repr(error), exc_info=True)


def batch_subscriber(
    stream: StreamSpec,
    durable: str,
    subject: str,
    model: type[EventT],
    handle: BatchHandler[EventT],
    policy: GuardPolicy,
    *,
    title: str,
    description: str,
    batch_size: int = 64,
    check: MessageCheck[EventT] | None = None,
) -> BatchConsumer[EventT]:
    """A batch consumer, not started: the bootstrap starts it (`running_consumers`)."""
    return BatchConsumer(stream, durable, subject, model, handle, policy, title, description, batch_size, check)


@contextlib.asynccontextmanager
async def running_consumers(connection: NatsClient, consumers: Sequence[BatchConsumer[Any]]) -> AsyncIterator[None]:
    """Consume while inside; on the way out each finishes its batch in hand before the connection is drained."""
    started: list[BatchConsumer[Any]] = []
    try:
        for consumer in consumers:
            await consumer.start(connection)
            started.append(consumer)
        yield
    finally:
        await asyncio.gather(*(consumer.stop() for consumer in started))


def stop_at_shutdown(app: FastAPI, consumers: Sequence[BatchConsumer[Any]]) -> None:
    """Stop consuming when the HTTP server shuts down: uvicorn ends the app's lifespan before `serve` drains the
    broker's connection, so the batch in hand is still acked over a live one (not redelivered after the ack wait).
    Tests, which run no lifespan, stop the consumers when they leave the bootstrap."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with inner(application) as state:
            yield state
        await asyncio.gather(*(consumer.stop() for consumer in consumers))

    app.router.lifespan_context = lifespan


def document_batch_consumers(broker: NatsBroker, consumers: Sequence[BatchConsumer[Any]]) -> None:
    """Describe batch consumers in the AsyncAPI document, on a broker that is never started
    (`devstack/asyncapi.py`): each is documented as a subscriber of its model, which is what each message is."""
    for consumer in consumers:

        async def described(event: Any) -> None:  # replaced by the model's annotation below
            raise NotImplementedError

        described.__annotations__["event"] = consumer.model
        described.__name__ = f"on_{consumer.durable.replace('-', '_')}"
        broker.subscriber(
            consumer.subject,
            stream=JStream(consumer.stream.name, declare=False),
            durable=consumer.durable,
            pull_sub=PullSub(batch_size=consumer.batch_size, timeout=FETCH_WINDOW_SECONDS),
            title=consumer.title,
            description=consumer.description,
        )(described)


async def consume_batch(
    messages: list[Msg],
    model: type[EventT],
    handle: BatchHandler[EventT],
    policy: GuardPolicy,
    check: MessageCheck[EventT] | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Decode and check each message (refusing the invalid ones), hand the rest to `handle`, then ack them."""
    valid: list[Decoded[EventT]] = []
    for raw in messages:
        try:
            decoded = Decoded(model.model_validate_json(raw.data), raw)
            if check is not None:
                check(decoded)
        except (ValidationError, InvalidEvent) as error:
            await _refuse(raw, f"invalid: {error}", policy)
            continue
        valid.append(decoded)
    if valid:
        await _handle(valid, handle, policy, stopping)


async def _handle(
    batch: list[Decoded[EventT]], handle: BatchHandler[EventT], policy: GuardPolicy, stopping: Callable[[], bool]
) -> None:
    attempt = 0
    with structlog.contextvars.bound_contextvars(batch=len(batch)):
        while True:
            started = time.perf_counter()
            try:
                await handle(batch)
            except Exception as error:
                if not is_outage(error):
                    await _after_failure(batch, error, handle, policy, stopping)
                    return
                if stopping():  # not acked: redelivered after the ack wait, to this replica or another
                    log.info("batch_left_for_redelivery", error=repr(error)[:300])
                    return
                attempt += 1
                await _wait_out(batch, error, attempt, policy)
                continue
            finally:
                _observe_seconds(batch, policy.service, time.perf_counter() - started)
            break
    if attempt:
        log.info("dependency_back", attempts=attempt)
    await asyncio.gather(*(settle(item.raw.ack, "ack") for item in batch))
    _count(batch, policy.service, "ok")


async def _wait_out(batch: list[Decoded[EventT]], error: Exception, attempt: int, policy: GuardPolicy) -> None:
    """One pause of an outage: counted, logged without a traceback (the first and every `OUTAGE_LOG_EVERY`th
    try), every message's ack wait renewed, then back to the handler."""
    _count(batch, policy.service, "outage")
    if attempt == 1 or attempt % OUTAGE_LOG_EVERY == 0:
        log.warning("dependency_unavailable_waiting", attempt=attempt, error=repr(error)[:300])
    await asyncio.gather(*(signal_progress(item.raw) for item in batch))
    await asyncio.sleep(outage_wait_seconds(attempt))


async def _after_failure(
    batch: list[Decoded[EventT]],
    error: Exception,
    handle: BatchHandler[EventT],
    policy: GuardPolicy,
    stopping: Callable[[], bool],
) -> None:
    """Find the failing message by handling the batch one message at a time; retry or dead-letter it alone."""
    if len(batch) > 1:
        log.warning("batch_failed_one_by_one", error=repr(error))
        for item in batch:
            await _handle([item], handle, policy, stopping)
        return
    [item] = batch
    with structlog.contextvars.bound_contextvars(subject=item.raw.subject, event_id=_event_id(item)):
        if isinstance(error, InvalidEvent | ValidationError):
            await _refuse(item.raw, f"invalid: {error}", policy)
            return
        deliveries = item.raw.metadata.num_delivered if item.raw.metadata else 1
        if deliveries >= policy.max_deliveries:
            log.error("handler_failed_dead_lettered", deliveries=deliveries, error=repr(error))
            reason = f"failed {deliveries} times: {error!r}"
            sent = publish_dead_letter(policy.broker_ref(), policy.service, item.raw, reason)
            await store_then_ack(item.raw, sent, policy.service, item.raw.ack)
            return
        log.warning("handler_failed_will_retry", deliveries=deliveries, error=repr(error), exc_info=True)
        await settle(lambda: item.raw.nak(delay=retry_delay_seconds(deliveries)), "nak")
        _count(batch, policy.service, "retried")


async def _refuse(raw: Msg, reason: str, policy: GuardPolicy) -> None:
    """An invalid message: to the service's `on_invalid` (ingest: `FaceRejected`) or the dead-letter subject."""
    sent: Awaitable[None]
    if policy.on_invalid is None:
        sent = publish_dead_letter(policy.broker_ref(), policy.service, raw, reason)
    else:
        sent = policy.on_invalid(policy.broker_ref(), raw, reason)
    await store_then_ack(raw, sent, policy.service, raw.ack)


def _event_id(item: Decoded[Any]) -> str:
    return str(getattr(item.event, "event_id", ""))


def _count(batch: list[Decoded[EventT]], service: str, outcome: str) -> None:
    for family, count in Counter(subject_family(item.raw.subject) for item in batch).items():
        MESSAGES_CONSUMED.labels(service, family, outcome).inc(count)


def _observe_seconds(batch: list[Decoded[EventT]], service: str, seconds: float) -> None:
    """Each message of the batch waited for the whole batch: that is its handling time."""
    for item in batch:
        HANDLER_SECONDS.labels(service, subject_family(item.raw.subject)).observe(seconds)
