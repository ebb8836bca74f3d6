"""What ingest made of the events the demo edge published: how many it accepted, how many it refused, and why.

The edge only knows that JetStream stored its events (`published=7`); ingest may still refuse every one of them
(a clock in the future, an unregistered camera). `make dev` reads the trust boundary's own record, the
`FaceIngested` and `FaceRejected` facts on the FACES stream, so its summary cannot claim a success ingest refused.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy

from schemas import FaceRejected, subjects
from schemas.subjects import FACES_STREAM

REASON_LENGTH = 160
"""A rejection reason is cut here in the summary: it is for a person reading a terminal, the stream keeps it all."""


@dataclass(frozen=True)
class IngestOutcome:
    accepted: int
    rejected_by_reason: Counter[str]

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


def describe(outcome: IngestOutcome) -> str:
    """One line when everything was accepted; otherwise one more line per distinct reason, most frequent first."""
    lines = [f"ingest accepted {outcome.accepted} events and rejected {outcome.rejected}"]
    lines += [f"  {count} rejected: {reason}" for reason, count in outcome.rejected_by_reason.most_common()]
    return "\n".join(lines)


async def faces_stream_position(nats_url: str, credentials: Path | None) -> int:
    """The FACES stream's last sequence: taken before the edge runs, so the summary counts only this run's facts
    (the stream keeps earlier runs' for days)."""
    async with _connection(nats_url, credentials) as connection:
        info = await connection.jetstream().stream_info(FACES_STREAM.name)
    return int(info.state.last_seq)


async def read_ingest_outcome(nats_url: str, credentials: Path | None, tenant: str, after: int) -> IngestOutcome:
    """The tenant's FaceIngested facts counted and its FaceRejected reasons read, stored after sequence `after`."""
    async with _connection(nats_url, credentials) as connection:
        ingested = await _stored_after(connection, subjects.face_ingested(tenant, "*"), after)
        rejected = await _stored_after(connection, subjects.face_rejected(tenant), after)
    reasons = Counter(FaceRejected.model_validate_json(data).reason[:REASON_LENGTH] for data in rejected)
    return IngestOutcome(len(ingested), reasons)


@asynccontextmanager
async def _connection(nats_url: str, credentials: Path | None) -> AsyncIterator[NATS]:
    options = {"user_credentials": str(credentials)} if credentials is not None else {}
    connection = await nats.connect(nats_url, connect_timeout=5, allow_reconnect=False, **options)
    try:
        yield connection
    finally:
        await connection.close()


async def _stored_after(connection: NATS, subject: str, after: int) -> list[bytes]:
    """The payloads stored on `subject` after sequence `after`, read by a consumer that goes when unsubscribed."""
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    subscription = await connection.jetstream().pull_subscribe(subject, stream=FACES_STREAM.name, config=config)
    payloads: list[bytes] = []
    try:
        while True:
            try:
                messages = await subscription.fetch(batch=256, timeout=1)
            except TimeoutError:  # nothing more stored
                return payloads
            for message in messages:
                payloads.append(message.data)
                await message.ack()
    finally:
        await subscription.unsubscribe()


def print_ingest_summary(nats_url: str, credentials: Path | None, tenant: str, after: int) -> None:
    print(describe(asyncio.run(read_ingest_outcome(nats_url, credentials, tenant, after))), flush=True)
