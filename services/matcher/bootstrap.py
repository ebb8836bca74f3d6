"""Builds matcher's adapters from settings; the only place they are constructed."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient

from schemas import subjects
from services.common.batch_consumer import running_consumers, stop_at_shutdown
from services.common.bus import EventPublisher, connect_broker, event_publisher
from services.common.http import create_app, nats_ready
from services.common.startup import wait_for_dependency
from services.matcher.adapters.ambiguous_pairs import AmbiguousPairs
from services.matcher.adapters.decisions import MatchDecisions
from services.matcher.adapters.milvus import FaceVectorStore
from services.matcher.adapters.not_same import NotSamePairs
from services.matcher.adapters.staff_gallery import StaffGallery
from services.matcher.adapters.step_ledger import StepLedger
from services.matcher.adapters.tenant_lease import TenantLease
from services.matcher.adapters.tenant_settings import TenantSettings
from services.matcher.adapters.vector_index import VectorIndex
from services.matcher.adapters.vector_log import VectorLog
from services.matcher.api import router
from services.matcher.config import MatcherSettings
from services.matcher.consumers import register_consumers
from services.matcher.handlers import SERVICE as SERVICE
from services.matcher.handlers import MatcherPorts

STREAMS = (
    subjects.FACES_STREAM,
    subjects.IDENTITY_STREAM,
    subjects.OPERATIONS_STREAM,
    subjects.AUDIT_STREAM,
    subjects.DEADLETTER_STREAM,
)
RETENTION_STREAMS = (subjects.AUDIT_STREAM,)


@dataclass
class Matcher:
    settings: MatcherSettings
    broker: NatsBroker
    store: FaceVectorStore
    ports: MatcherPorts
    app: FastAPI


@asynccontextmanager
async def bootstrap(settings: MatcherSettings) -> AsyncIterator[Matcher]:
    broker = await connect_broker(settings, SERVICE, STREAMS)
    store = FaceVectorStore(settings.milvus_uri, settings.milvus_token, settings.collection_prefix)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(broker.stop)
        stack.push_async_callback(store.close)
        await wait_for_dependency(
            "Milvus",
            store.connect,
            settings.startup_timeout_seconds,
            hint=f"Check REVISIT_MILVUS_URI ({settings.milvus_uri}): a Milvus server URL or a Milvus Lite file path.",
        )
        ports = await _open_ports(settings, broker, store, stack)
        consumers = register_consumers(broker, settings, ports)
        app = create_app(SERVICE, {"nats": nats_ready(broker), "milvus": store.ping}, settings, (router,))
        app.state.ports = ports
        stop_at_shutdown(app, consumers)
        async with running_consumers(broker.connection, consumers):  # stopped before the broker and Milvus close
            yield Matcher(settings, broker, store, ports, app)


async def _open_ports(
    settings: MatcherSettings, broker: NatsBroker, store: FaceVectorStore, stack: AsyncExitStack
) -> MatcherPorts:
    """The KV-backed adapters; the mirrors (staff, not-same, tenant settings) are loaded before the matcher
    consumes anything."""
    connection, replicas = broker.connection, settings.nats_stream_replicas
    staff = await StaffGallery.open(connection, replicas)
    stack.push_async_callback(staff.close)
    not_same = await NotSamePairs.open(connection, replicas)
    stack.push_async_callback(not_same.close)
    tenant_settings = await TenantSettings.open(connection, replicas)
    stack.push_async_callback(tenant_settings.close)
    return MatcherPorts(
        settings=settings,
        store=store,
        index=await open_vector_index(settings, connection, store),
        decisions=await MatchDecisions.open(connection, replicas),
        staff=staff,
        not_same=not_same,
        ledger=await StepLedger.open(connection, replicas),
        publish=event_publisher(broker, SERVICE),
        tenant_settings=tenant_settings,
        ambiguous=await AmbiguousPairs.open(connection, replicas),
    )


async def open_vector_index(settings: MatcherSettings, connection: NatsClient, store: FaceVectorStore) -> VectorIndex:
    """Milvus with the tenant leases and the vector log every writer of vectors goes through."""
    replicas = settings.nats_stream_replicas
    lease = await TenantLease.open(connection, settings.lease_ttl_seconds, replicas, settings.lease_wait_seconds)
    log = await VectorLog.open(connection, replicas)
    return VectorIndex(store, lease, log, settings.max_vectors_in_memory)


@dataclass
class MatcherRetention:
    """What the matcher's retention job needs, and nothing else: no consumers, mirrors or HTTP server."""

    settings: MatcherSettings
    broker: NatsBroker
    index: VectorIndex
    publish: EventPublisher


@asynccontextmanager
async def bootstrap_retention(settings: MatcherSettings) -> AsyncIterator[MatcherRetention]:
    """NATS (policies, the run lease, the tenant leases and vector log, audit) and Milvus, each waited for a bounded
    time. Deletions go through the tenant leases and the vector log, so running matchers drop the deleted rows from
    their copies. A Milvus Lite file is opened by one process at a time: run this against it only while the
    matcher is stopped, or share the store as `milvus-lite server`."""
    broker = await connect_broker(settings, SERVICE, RETENTION_STREAMS)
    store = FaceVectorStore(settings.milvus_uri, settings.milvus_token, settings.collection_prefix)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(broker.stop)
        stack.push_async_callback(store.close)
        await wait_for_dependency(
            "Milvus",
            store.connect,
            settings.startup_timeout_seconds,
            hint=f"Check REVISIT_MILVUS_URI ({settings.milvus_uri}): a Milvus server URL or a Milvus Lite file path.",
        )
        index = await open_vector_index(settings, broker.connection, store)
        yield MatcherRetention(settings, broker, index, event_publisher(broker, SERVICE))
