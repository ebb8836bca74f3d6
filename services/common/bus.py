"""NATS JetStream plumbing: broker, idempotent stream declarations, publishing, the dead-letter guard.

Consumers are durable pull consumers with manual acks: `DeadLetterGuard` acks a message only after its
handler returned (so after the handler's own commit), retries failures with backoff, and sends a
message that is invalid, or still failing after `max_deliveries`, to `deadletter.<service>.<subject>`
with the reason. An unreachable NATS, Postgres or S3 is not the message's failure: the guard waits it out,
however long, and never dead-letters for it. A bad message never stops a consumer, and nothing is dropped
silently.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import nats
import nats.js.api
import structlog
from faststream import AckPolicy
from faststream._internal.middlewares import BaseMiddleware
from faststream.message import StreamMessage
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from schemas import subjects
from schemas.base import Event
from schemas.subjects import StreamSpec
from services.common.logging import get_logger
from services.common.metrics import (
    EVENTS_PUBLISHED,
    HANDLER_SECONDS,
    MESSAGES_CONSUMED,
    subject_family,
)
from services.common.outage import is_outage
from services.common.settings import ServiceSettings
from services.common.startup import wait_for_dependency

log = get_logger(__name__)
ACK_WAIT_SECONDS = 30.0
UNLIMITED_DELIVERIES = -1
FETCH_WINDOW_SECONDS = 0.25


class InvalidEvent(ValueError):
    """An event that can never be processed (bad content, not a transient failure): dead-letter it."""


def stream_config(spec: StreamSpec, replicas: int = 1) -> nats.js.api.StreamConfig:
    return nats.js.api.StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        max_age=float(spec.max_age_seconds),
        duplicate_window=float(spec.duplicate_window_seconds),
        storage=nats.js.api.StorageType.FILE,
        num_replicas=replicas,
    )


async def declare_streams(connection: NatsClient, specs: Sequence[StreamSpec], replicas: int = 1) -> None:
    """Create each stream, or update it to the declared config: safe to run at every start."""
    js = connection.jetstream()
    for spec in specs:
        config = stream_config(spec, replicas)
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)


def durable_pull(
    stream: StreamSpec, durable: str, subject: str, max_deliveries: int, fetch_batch: int = 32, workers: int = 1
) -> dict[str, Any]:
    """Subscriber options for a durable pull consumer with manual acks and bounded redeliveries.

    With `workers` > 1, that many messages are handled at once (each still acked after its own handler
    returned, by the guard); only for handlers whose messages do not depend on each other's order."""
    concurrency = {"max_workers": workers} if workers > 1 else {}
    return {
        **concurrency,
        "subject": subject,
        "stream": JStream(stream.name, declare=False),
        "durable": durable,
        # a fetch returns when the batch is full or after this window: short, so a quiet stream adds little latency
        "pull_sub": PullSub(batch_size=fetch_batch, timeout=FETCH_WINDOW_SECONDS),
        "ack_policy": AckPolicy.MANUAL,
        # unlimited: the guard dead-letters at `max_deliveries` failures of the message; a server-side bound would
        # also end a message that an outage held, and a message that reaches it is dropped with no dead letter
        "config": ConsumerConfig(ack_wait=ACK_WAIT_SECONDS, max_deliver=UNLIMITED_DELIVERIES),
    }


async def publish_event(broker: NatsBroker, service: str, subject: str, event: Event) -> None:
    """Publish to JetStream with `Nats-Msg-Id` = event id, so a re-publish inside the window is dropped.

    Straight through nats-py, not FastStream's publish, whose command objects and middleware chain cost more CPU
    than the publication itself (the pipeline profile); the message is the same but for its correlation id."""
    await publish_on(broker.connection.jetstream(), service, subject, event)


async def publish_on(js: JetStreamContext, service: str, subject: str, event: Event) -> None:
    """The publication itself: to the subject's stream, deduplicated by the event id, counted."""
    await js.publish(
        subject,
        event.to_json_bytes(),
        stream=subjects.stream_for_subject(subject).name,
        headers={"Nats-Msg-Id": str(event.event_id), "content-type": "application/json"},
    )
    EVENTS_PUBLISHED.labels(service, schema_label(event)).inc()


def schema_label(event: Event) -> str:
    """The event's schema name (`VisitRecord.v1`) for the publication metric."""
    schema: str = event.model_dump(include={"schema_name"}).get("schema_name", type(event).__name__)
    return schema


def retry_delay_seconds(deliveries: int) -> float:
    """Exponential backoff between redeliveries: 1, 2, 4 ... capped at 30 s."""
    return float(min(2 ** max(deliveries - 1, 0), 30))


OUTAGE_WAIT_MAX_SECONDS = 10.0
OUTAGE_LOG_EVERY = 20
"""While an outage lasts, a waiting message logs its first try and then every this many."""


def outage_wait_seconds(attempt: int) -> float:
    """Pause before trying a message again while a dependency is unreachable: 0.5, 1, 2 ... capped at 10 s, well
    under the ack wait, so the message's progress signal keeps it from being redelivered meanwhile."""
    return float(min(0.5 * 2 ** max(attempt - 1, 0), OUTAGE_WAIT_MAX_SECONDS))


InvalidMessageHandler = Callable[[NatsBroker, Msg, str], Awaitable[None]]
"""Where a service sends a message it can never process, given the broker, the raw message and why."""


async def publish_dead_letter(broker: NatsBroker, service: str, raw: Msg, reason: str) -> None:
    """Send the raw message to `deadletter.<service>.<subject>` with the reason in a header."""
    log.warning("dead_lettered", reason=reason[:500])
    sequence = raw.metadata.sequence.stream if raw.metadata else ""
    await broker.publish(
        raw.data,
        subjects.dead_letter(service, raw.subject),
        headers={
            "Revisit-Reason": reason[:4000].replace("\n", " "),
            "Revisit-Original-Subject": raw.subject,
            "Nats-Msg-Id": f"dlq:{service}:{raw.subject}:{sequence}",
        },
        stream=subjects.DEADLETTER_STREAM.name,
    )


async def signal_progress(raw: Msg) -> None:
    """Tell JetStream the message is still being worked on (resets its ack wait). With NATS itself down this
    cannot arrive: the server then redelivers after the ack wait, and the consumer is idempotent."""
    try:
        await raw.in_progress()
    except Exception as error:  # only ever an outage of NATS here; the next try or the redelivery settles it
        log.debug("progress_signal_failed", error=repr(error))


async def settle(action: Callable[[], Awaitable[None]], what: str) -> None:
    """Ack or nak; if NATS cannot take it now, the message is redelivered after the ack wait and handled
    again, idempotently, so an unreachable NATS is logged, never raised."""
    try:
        await action()
    except Exception as error:
        if not is_outage(error):
            raise
        log.warning(f"{what}_failed_nats_unreachable", error=repr(error))


async def store_then_ack(raw: Msg, sent: Awaitable[None], service: str, ack: Callable[[], Awaitable[None]]) -> None:
    """Ack a refused or dead-lettered message only once its dead letter (or rejection) is stored: if NATS cannot
    take it, the message is redelivered after a pause (max_deliver is unlimited), never acknowledged with nothing
    kept. `ack` is how the caller acks (FastStream's message, or nats-py's)."""
    family = subject_family(raw.subject)
    try:
        await sent
    except Exception as error:
        if not is_outage(error):
            raise
        log.warning("dead_letter_failed_will_retry", error=repr(error)[:300])
        deliveries = raw.metadata.num_delivered if raw.metadata else 1
        await settle(lambda: raw.nak(delay=outage_wait_seconds(deliveries)), "nak")
        MESSAGES_CONSUMED.labels(service, family, "outage").inc()
        return
    await settle(ack, "ack")
    MESSAGES_CONSUMED.labels(service, family, "dead_lettered").inc()


def dead_letter_guard(
    service: str,
    max_deliveries: int,
    broker_ref: Callable[[], NatsBroker],
    on_invalid: InvalidMessageHandler | None = None,
) -> Callable[..., BaseMiddleware]:
    """Build the guard middleware class for `service` (FastStream instantiates it per message).

    Invalid messages go to `on_invalid` (ingest publishes them as `FaceRejected`), by default to the
    dead-letter subject; messages that keep failing always go to the dead-letter subject.

    An outage (`services.common.outage.is_outage`: NATS, Postgres or S3 unreachable) is no failure of the message:
    the guard waits it out in place, trying the handler again with backoff and signalling progress so JetStream
    does not redeliver meanwhile, however long the outage lasts. So a message's delivery count grows only with
    failures of the message itself (and with deliveries lost to a crash or an ack wait that expired), and only
    those bring it to `max_deliveries`. The consumers' `max_deliver` is unlimited (`durable_pull`): the guard
    alone decides, because a server that stops redelivering drops the message without a dead letter.
    """

    class DeadLetterGuard(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            raw = msg.raw_message
            family = subject_family(raw.subject)
            event_id = (raw.headers or {}).get("Nats-Msg-Id", "")
            with structlog.contextvars.bound_contextvars(subject=raw.subject, event_id=event_id):
                attempt = 0
                while True:
                    started = time.perf_counter()
                    try:
                        result = await call_next(msg)
                    except (ValidationError, InvalidEvent) as error:
                        await self._invalid(msg, f"invalid: {error}")
                        return None
                    except Exception as error:
                        if not is_outage(error):
                            await self._retry_or_dead_letter(msg, error)
                            return None
                        attempt += 1
                        await self._wait_out(msg, error, attempt)
                        continue
                    finally:
                        HANDLER_SECONDS.labels(service, family).observe(time.perf_counter() - started)
                    if attempt:
                        log.info("dependency_back", attempts=attempt)
                    await settle(msg.ack, "ack")
                    MESSAGES_CONSUMED.labels(service, family, "ok").inc()
                    return result

        async def _wait_out(self, msg: StreamMessage[Any], error: Exception, attempt: int) -> None:
            """One pause of an outage: counted, logged without a traceback (the first and every
            `OUTAGE_LOG_EVERY`th try), the ack wait renewed, then back to the handler."""
            MESSAGES_CONSUMED.labels(service, subject_family(msg.raw_message.subject), "outage").inc()
            if attempt == 1 or attempt % OUTAGE_LOG_EVERY == 0:
                log.warning("dependency_unavailable_waiting", attempt=attempt, error=repr(error)[:300])
            await signal_progress(msg.raw_message)
            await asyncio.sleep(outage_wait_seconds(attempt))

        async def _retry_or_dead_letter(self, msg: StreamMessage[Any], error: Exception) -> None:
            raw = msg.raw_message
            deliveries = raw.metadata.num_delivered if raw.metadata else 1
            family = subject_family(raw.subject)
            if deliveries >= max_deliveries:
                log.error("handler_failed_dead_lettered", deliveries=deliveries, error=repr(error))
                await self._dead_letter(msg, f"failed {deliveries} times: {error!r}")
                return
            log.warning("handler_failed_will_retry", deliveries=deliveries, error=repr(error), exc_info=True)
            await settle(lambda: raw.nak(delay=retry_delay_seconds(deliveries)), "nak")
            MESSAGES_CONSUMED.labels(service, family, "retried").inc()

        async def _dead_letter(self, msg: StreamMessage[Any], reason: str) -> None:
            await self._store_then_ack(msg, publish_dead_letter(broker_ref(), service, msg.raw_message, reason))

        async def _invalid(self, msg: StreamMessage[Any], reason: str) -> None:
            sent: Awaitable[None]
            if on_invalid is None:
                sent = publish_dead_letter(broker_ref(), service, msg.raw_message, reason)
            else:
                sent = on_invalid(broker_ref(), msg.raw_message, reason)
            await self._store_then_ack(msg, sent)

        async def _store_then_ack(self, msg: StreamMessage[Any], sent: Awaitable[None]) -> None:
            await store_then_ack(msg.raw_message, sent, service, msg.ack)

    return DeadLetterGuard


async def align_durable_consumers(broker: NatsBroker) -> None:
    """Bring each existing durable consumer of `broker`'s subscribers to the `max_deliver` it declares.

    nats-py binds to an existing durable as it is, so a consumer created by an older release (which bounded
    `max_deliver`) would keep ending redelivery by itself; NATS 2.10+ edits `max_deliver` in place."""
    js = broker.connection.jetstream()
    for subscriber in broker.subscribers:
        options = getattr(subscriber, "extra_options", None) or {}
        stream, durable = options.get("stream"), options.get("durable")
        declared = getattr(subscriber, "config", None)
        if not stream or not durable or declared is None:
            continue
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            continue  # created with the declared config when the subscriber starts
        if info.config.max_deliver == declared.max_deliver:
            continue
        await js.add_consumer(stream, config=replace(info.config, max_deliver=declared.max_deliver))
        log.info("consumer_max_deliver_updated", durable=durable, was=info.config.max_deliver, now=declared.max_deliver)


async def start_consuming(broker: NatsBroker) -> None:
    """Align the durable consumers' config, then start the subscribers."""
    await align_durable_consumers(broker)
    await broker.start()


async def connect_broker(
    settings: ServiceSettings,
    service: str,
    streams: Sequence[StreamSpec],
    on_invalid: InvalidMessageHandler | None = None,
) -> NatsBroker:
    """A connected FastStream NATS broker with the guard installed and `streams` declared.

    It connects as the service's NATS user when `nats_credentials` is set (services/common/nats_auth.py)."""
    credentials = str(settings.nats_credentials) if settings.nats_credentials else None
    broker = NatsBroker(
        settings.nats_url,
        connect_timeout=2,
        max_reconnect_attempts=-1,
        logger=None,
        user_credentials=credentials,
    )
    broker.add_middleware(dead_letter_guard(service, settings.max_deliveries, lambda: broker, on_invalid))

    async def connect() -> NatsBroker:
        await broker.connect()
        await declare_streams(broker.connection, streams, settings.nats_stream_replicas)
        return broker

    return await wait_for_dependency(
        "NATS JetStream",
        connect,
        settings.startup_timeout_seconds,
        hint=f"Check REVISIT_NATS_URL ({settings.nats_url}), REVISIT_NATS_CREDENTIALS ({credentials}) and that "
        "the server runs with JetStream.",
    )


def consumed_subjects(broker: NatsBroker) -> list[str]:
    """The filter subject of every subscriber registered on `broker` (`faces.matched.>`)."""
    filters = (getattr(subscriber, "subject", "") for subscriber in broker.subscribers)
    return [str(getattr(subject, "template", subject)) for subject in filters]


EventPublisher = Callable[[str, Event], Awaitable[None]]
"""What handlers get to publish with: `await publish(subject, event)`."""


def event_publisher(broker: NatsBroker, service: str) -> EventPublisher:
    async def publish(subject: str, event: Event) -> None:
        await publish_event(broker, service, subject, event)

    return publish


def jetstream_publisher(connection: NatsClient, service: str) -> EventPublisher:
    """`event_publisher` on one JetStream context of the connection, for handlers that announce hundreds of events
    a batch (the same publication as `publish_event`)."""
    js = connection.jetstream()

    async def publish(subject: str, event: Event) -> None:
        await publish_on(js, service, subject, event)

    return publish


def document_publication(broker: NatsBroker, subject: str, model: type[Event], description: str) -> None:
    """Declare what a service publishes, so the generated AsyncAPI document shows it with its schema."""
    broker.publisher(subject, schema=model, title=f"{subject}:{model.__name__}", description=description)


async def open_bucket(connection: NatsClient, config: nats.js.api.KeyValueConfig) -> KeyValue:
    """A KV bucket the service owns (or shares with another service), created with `config` if missing."""
    js = connection.jetstream()
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        return await js.create_key_value(config=config)


async def open_staff_gallery(connection: NatsClient, replicas: int = 1) -> KeyValue:
    """The staff gallery KV bucket (identity writes it, edges watch it), created by whichever service starts first."""
    config = nats.js.api.KeyValueConfig(
        bucket=subjects.STAFF_GALLERY_BUCKET, history=1, storage=nats.js.api.StorageType.FILE, replicas=replicas
    )
    return await open_bucket(connection, config)
