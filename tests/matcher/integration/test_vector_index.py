"""The replica's in-memory copies on the real NATS KV and Milvus Lite: a whole load is made outside the tenant's
lease and still misses no write, and the copies of all tenants stay within the configured bound."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import numpy as np
from nats.aio.client import Client as NatsClient
from prometheus_client import REGISTRY

from schemas import PersonKind
from services.matcher.adapters.milvus import FaceVectorStore, StoredVector
from services.matcher.adapters.vector_index import VectorIndex
from services.matcher.adapters.vector_log import KEPT_CHANGES
from services.matcher.bootstrap import Matcher, open_vector_index
from services.matcher.domain.assignment import Vectors, normalize
from tests.support import new_tenant

MODEL, DIM = "index-model@1", 32


class StoreWithHook(FaceVectorStore):
    """The real store; `after_load` runs once a whole tenant load has read Milvus (a test's view of that moment)."""

    def __init__(self, uri: str, prefix: str, after_load: Callable[[], Awaitable[None]]) -> None:
        super().__init__(uri, "", prefix)
        self.after_load = after_load

    async def tenant_vectors(self, collection: str, tenant_id: str) -> tuple[list[StoredVector], Vectors]:
        loaded = await super().tenant_vectors(collection, tenant_id)
        await self.after_load()
        return loaded


def stored_rows(tenant: str, count: int, seed: int) -> list[StoredVector]:
    vectors = normalize(np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32))
    return [
        StoredVector(uuid.uuid4(), uuid.uuid4(), tenant, PersonKind.CUSTOMER, 0, vector.tolist()) for vector in vectors
    ]


async def replica(matcher: Matcher, connection: NatsClient, store: FaceVectorStore | None = None) -> VectorIndex:
    """Another replica's index: its own Milvus client on the module's store, its own copies."""
    store = store or FaceVectorStore(matcher.settings.milvus_uri, "", matcher.settings.collection_prefix)
    await store.connect()
    return await open_vector_index(matcher.settings, connection, store)


async def test_a_whole_load_leaves_the_lease_free_and_still_sees_the_write_in_flight_when_it_began(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    """Replica B holds the tenant's lease and has logged a write it has not yet stored in Milvus (its holder logs
    first). Replica A loads the tenant meanwhile: the load needs no lease (it completes while B holds it) and misses
    B's rows, yet once A holds the lease its copy has them: it counted itself one write behind the log it read."""
    tenant = new_tenant()
    writer = await replica(matcher, nats_connection)
    first, late = stored_rows(tenant, 3, 1), stored_rows(tenant, 2, 2)
    async with writer.holding(tenant, MODEL, DIM) as held:
        await held.insert(first)
    collection = writer.store.name_of(MODEL)
    loaded = asyncio.Event()

    async def signal_loaded() -> None:
        loaded.set()

    prefix = matcher.settings.collection_prefix
    loader = await replica(matcher, nats_connection, StoreWithHook(matcher.settings.milvus_uri, prefix, signal_loaded))

    async def load_and_read() -> dict[uuid.UUID, StoredVector]:
        async with loader.holding(tenant, MODEL, DIM) as held:
            return held.stored([row.sighting_id for row in first + late])

    async with writer.lease.hold(tenant, collection) as lease:
        entry = await writer.log.read(tenant, collection)
        await lease.fence()
        await writer.log.append(tenant, collection, entry, [row.sighting_id for row in late])
        loading = asyncio.create_task(load_and_read())
        await asyncio.wait_for(loaded.wait(), 60)  # A loaded while B holds the lease
        await writer.store.insert_into(collection, late)  # B's write reaches Milvus after A's load read it
    assert set(await loading) == {row.sighting_id for row in first + late}


async def test_copies_beyond_the_bound_are_dropped_least_recent_first_and_loaded_again(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    settings = matcher.settings.model_copy(update={"max_vectors_in_memory": 6})
    store = FaceVectorStore(settings.milvus_uri, "", settings.collection_prefix)
    await store.connect()
    index = await open_vector_index(settings, nats_connection, store)
    alice, bob = new_tenant(), new_tenant()
    rows = {alice: stored_rows(alice, 4, 3), bob: stored_rows(bob, 4, 4)}
    for tenant in (alice, bob):
        async with index.holding(tenant, MODEL, DIM) as held:
            await held.insert(rows[tenant])
    assert index.vectors_in_memory() == 4  # alice's copy went when bob's came: 8 rows would exceed 6
    assert REGISTRY.get_sample_value("revisit_matcher_vectors_in_memory") == 4
    async with index.holding(alice, MODEL, DIM) as held:  # loaded again from Milvus, whole
        assert set(held.stored([row.sighting_id for row in rows[alice]])) == {row.sighting_id for row in rows[alice]}
    assert index.vectors_in_memory() == 4  # and bob's went


async def test_a_copy_too_far_behind_the_log_is_loaded_again_without_the_lease(
    matcher: Matcher, nats_connection: NatsClient
) -> None:
    """Replica A's copy falls more writes behind than the log remembers; its next holding loads the tenant again,
    and during that load another replica takes and lets go of the lease (a load under the lease would make it
    wait, and time out)."""
    tenant = new_tenant()
    writer = await replica(matcher, nats_connection)
    collection = writer.store.name_of(MODEL)
    loads_leaving_the_lease_free = []

    async def another_replica_takes_the_lease() -> None:
        async with writer.lease.hold(tenant, collection, wait_seconds=10):
            loads_leaving_the_lease_free.append(tenant)

    prefix = matcher.settings.collection_prefix
    store = StoreWithHook(matcher.settings.milvus_uri, prefix, another_replica_takes_the_lease)
    behind = await replica(matcher, nats_connection, store)
    async with behind.holding(tenant, MODEL, DIM):
        pass
    written = [stored_rows(tenant, 1, seed) for seed in range(KEPT_CHANGES + 1)]
    for rows in written:
        async with writer.holding(tenant, MODEL, DIM) as held:
            await held.insert(rows)
    async with behind.holding(tenant, MODEL, DIM) as held:
        every = [row.sighting_id for rows in written for row in rows]
        assert set(held.stored(every)) == set(every)
    assert len(loads_leaving_the_lease_free) == 2  # the first load, and the one after falling behind
