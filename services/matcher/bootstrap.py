"""Builds matcher's adapters from settings; the only place they are constructed."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.nats import NatsBroker

from schemas import FaceIngested, subjects
from services.common.bus import connect_broker, event_publisher
from services.common.http import create_app, nats_ready
from services.common.startup import wait_for_dependency
from services.matcher.adapters.milvus import FaceVectorStore
from services.matcher.adapters.person_lock import PersonCreationLease
from services.matcher.config import MatcherSettings
from services.matcher.consumers import MatchBatcher, register_consumers
from services.matcher.handlers import MatchOutcome, identify_faces

SERVICE = "matcher"
STREAMS = (subjects.FACES_STREAM, subjects.DEADLETTER_STREAM)


@dataclass
class Matcher:
    settings: MatcherSettings
    broker: NatsBroker
    store: FaceVectorStore
    app: FastAPI


@asynccontextmanager
async def bootstrap(settings: MatcherSettings) -> AsyncIterator[Matcher]:
    broker = await connect_broker(
        settings.nats_url, SERVICE, settings.max_deliveries, STREAMS, settings.startup_timeout_seconds
    )
    store = FaceVectorStore(settings.milvus_uri, settings.milvus_token, settings.collection_prefix)
    try:
        await wait_for_dependency(
            "Milvus",
            store.connect,
            settings.startup_timeout_seconds,
            hint=f"Check REVISIT_MILVUS_URI ({settings.milvus_uri}): a Milvus server URL or a Milvus Lite file path.",
        )
        publish = event_publisher(broker, SERVICE)

        lease = await PersonCreationLease.open(broker.connection, settings.lease_ttl_seconds)

        async def match(events: Sequence[FaceIngested]) -> list[MatchOutcome]:
            return await identify_faces(events, settings, store, lease, publish)

        batcher = MatchBatcher(match, settings.batch_size, settings.batch_wait_ms / 1000)
        register_consumers(broker, settings, batcher)
        app = create_app(SERVICE, {"nats": nats_ready(broker), "milvus": store.ping})
        yield Matcher(settings, broker, store, app)
    finally:
        await broker.stop()
        await store.close()
