"""Publishing `FaceDetected` to JetStream, one awaited PubAck per event.

`Nats-Msg-Id` is the event id, so JetStream drops a re-publish inside its duplicate window (the outbox
replays after a crash between PubAck and delete). The publisher works on raw (subject, id, payload)
messages so the outbox can store exactly what is sent and replay it byte for byte.
"""

import asyncio
import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import nats
import nats.js.errors
from nats.aio.client import DEFAULT_INBOX_PREFIX
from nats.aio.client import Client as NatsClient

from edge.metrics import PUBLISH_SECONDS
from plumbing.logging import get_logger
from plumbing.startup import DependencyUnavailable
from schemas.faces import FaceDetected
from schemas.subjects import face_detected, private_inbox_prefix

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingMessage:
    """An event as it goes on the wire."""

    subject: str
    event_id: str
    payload: bytes

    @property
    def headers(self) -> dict[str, str]:
        return {"Nats-Msg-Id": self.event_id, "content-type": "application/json"}

    @property
    def wire_bytes(self) -> int:
        """What the server counts against its max_payload: the payload and the header block (`NATS/1.0`,
        one `name: value` line per header, a blank line)."""
        header_block = len("NATS/1.0\r\n\r\n") + sum(len(f"{k}: {v}\r\n") for k, v in self.headers.items())
        return len(self.payload) + header_block


def to_message(event: FaceDetected) -> OutgoingMessage:
    subject = face_detected(event.tenant_id, event.site_id, event.camera_id)
    return OutgoingMessage(subject, str(event.event_id), event.to_json_bytes())


class PublishRefused(Exception):
    """The bus refuses this message for good (too large, a bad subject, a request JetStream rejects): sending it
    again cannot succeed, so the outbox must set it aside rather than retry it forever."""


PERMANENT_ERRORS = (
    nats.errors.MaxPayloadError,
    nats.errors.BadSubjectError,
    nats.errors.BadHeaderError,
    nats.js.errors.BadRequestError,
)
"""Errors a retry cannot cure. Anything else (timeouts, disconnections, no responders, a 503 from JetStream) is
transient and retried forever."""


class MessagePublisher(Protocol):
    """What the outbox relay needs: publish one message, True if JetStream already had it; PublishRefused when
    it never will."""

    async def publish(self, message: OutgoingMessage) -> bool: ...


class EventSink(Protocol):
    """Where the pipeline hands its events: the outbox in production, the publisher itself in tests."""

    async def send(self, event: FaceDetected) -> None: ...


class JetStreamPublisher:
    def __init__(self, connection: NatsClient, publish_timeout_seconds: float) -> None:
        self._connection = connection
        self._js = connection.jetstream(timeout=publish_timeout_seconds)
        self._timeout = publish_timeout_seconds

    @property
    def connection(self) -> NatsClient:
        return self._connection

    @property
    def connected(self) -> bool:
        return bool(self._connection.is_connected)

    @property
    def max_payload(self) -> int:
        """The server's max_payload (headers included), from its INFO."""
        return int(self._connection.max_payload)

    async def publish(self, message: OutgoingMessage) -> bool:
        """Publish and wait for the PubAck; True if JetStream already had this event id (a duplicate).

        Raises PublishRefused when the bus will never take it. A message over max_payload with its headers is
        refused here: nats-py checks the payload alone, and the server would drop the whole connection."""
        if message.wire_bytes > self.max_payload:
            raise PublishRefused(
                f"message of {message.wire_bytes} bytes with headers is over the server's max_payload "
                f"of {self.max_payload}"
            )
        try:
            with PUBLISH_SECONDS.time():
                ack = await self._js.publish(
                    message.subject, message.payload, timeout=self._timeout, headers=message.headers
                )
        except PERMANENT_ERRORS as error:
            raise PublishRefused(f"{type(error).__name__}: {error}") from error
        return bool(ack.duplicate)

    async def send(self, event: FaceDetected) -> None:
        await self.publish(to_message(event))

    async def close(self) -> None:
        await self._connection.drain()


def user_of_credentials(credentials: Path) -> str:
    """The NATS user (public key, the JWT's `sub`) of a `.creds` file."""
    lines = [line.strip() for line in credentials.read_text().splitlines()]
    try:
        payload = lines[lines.index("-----BEGIN NATS USER JWT-----") + 1].split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])
    except (ValueError, IndexError, KeyError) as error:
        raise DependencyUnavailable(f"{credentials} is not a NATS .creds file ({error})") from error


def connect_options(credentials: Path | None) -> dict[str, Any]:
    """nats-py options for a device user: its credentials and its private inbox prefix, the only inbox its
    permissions let it subscribe to (PubAcks and the staff gallery watch arrive there)."""
    if credentials is None:
        return {"inbox_prefix": DEFAULT_INBOX_PREFIX}
    return {
        "user_credentials": str(credentials),
        "inbox_prefix": private_inbox_prefix(user_of_credentials(credentials)),
    }


async def connect_publisher(
    url: str, credentials: Path | None, timeout_seconds: float, publish_timeout_seconds: float
) -> JetStreamPublisher:
    """Connect as the device user, or raise DependencyUnavailable.

    The edge declares nothing: the services own the streams (ingest declares FACES_DETECTED); until it
    exists, publishing fails and events wait in the outbox. After this first connection nats-py reconnects
    forever; events wait in the outbox meanwhile.
    """
    last_error: list[str] = []
    client: list[NatsClient] = []

    async def remember_error(error: Exception) -> None:
        last_error.append(f"{type(error).__name__}: {error}")

    async def on_disconnect() -> None:
        if client and not (client[0].is_draining or client[0].is_closed):  # not our own close
            log.warning("nats_disconnected", url=url)

    async def on_reconnect() -> None:
        log.info("nats_reconnected", url=url)

    try:
        connection = await asyncio.wait_for(
            nats.connect(
                url,
                connect_timeout=2,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                error_cb=remember_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                name="revisit-edge",
                **connect_options(credentials),
            ),
            timeout_seconds,
        )
        client.append(connection)
    except (TimeoutError, OSError, nats.errors.Error) as error:
        reason = last_error[-1] if last_error else f"{type(error).__name__}: {error}"
        raise DependencyUnavailable(
            f"NATS at {url} unreachable after {timeout_seconds:.0f}s ({reason}). Check --nats-url / REVISIT_NATS_URL "
            "and --nats-credentials / REVISIT_EDGE_NATS_CREDENTIALS (the device's .creds)."
        ) from error
    return JetStreamPublisher(connection, publish_timeout_seconds)
