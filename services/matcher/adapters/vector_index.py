"""The matcher's view of a tenant's face vectors: an exact in-memory copy per tenant and collection, searched under
the tenant's lease and kept in step with Milvus (the durable store) across replicas.

Every write of a tenant's vectors, by any replica or by the retention job, runs under the tenant's lease
(`adapters.tenant_lease`), is fenced, and is appended to the vector log (`adapters.vector_log`) just before it
reaches Milvus. Under the lease a replica reads the log first: if its copy is at the log's `seq` it
searches at once; if it is a few writes behind it re-reads only those rows by primary key; else (a first use,
a new replica, a takeover after a crash) it loads the tenant's rows from Milvus. So two replicas never decide
on different views of a tenant: the one that holds the lease sees every vector stored before it.

A whole load is made before the lease is taken (100,000 rows took 14-24 s under load, 73 s before vectors came
as float32: longer than another replica waits for the lease). It reads the log, then Milvus, and counts the copy
one write behind the log it read, because that write's holder logs first and may still have been writing to
Milvus; under the lease the replica re-reads that write's rows (and any later ones) by primary key. A copy too far
behind when the lease is taken is dropped and loaded again outside the lease; only the last of `UNLEASED_LOADS`
tries loads under it.

Memory: a copy holds its rows' vectors as float32 (`dim` x 4 bytes each, plus at most a quarter more of spare
capacity) and one small Python record per row (about 0.6 KB): 100,000 rows of 512-d take about 0.27 GB.
`REVISIT_MATCHER_MAX_VECTORS_IN_MEMORY` bounds the rows of all copies of a replica: past it, the copies held least
recently (and not in use) are dropped, to be loaded again (outside the lease) when their tenant is next matched.
The gauge `revisit_matcher_vectors_in_memory` shows the rows held.
"""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum

from services.common.logging import get_logger
from services.common.metrics import MATCHER_VECTORS_IN_MEMORY
from services.matcher.adapters.milvus import CollectionRows, FaceVectorStore
from services.matcher.adapters.tenant_lease import HeldLease, TenantLease
from services.matcher.adapters.vector_log import VectorLog, VectorLogConflict, VectorLogEntry
from services.matcher.domain.assignment import Candidate, Vectors
from services.matcher.domain.exact_search import StoredVector, TenantVectors

log = get_logger(__name__)
COLLECTIONS_LEASE = "_collections"
"""The lease "tenant" under which collections are created: no tenant id starts with an underscore."""
CopyKey = tuple[str, str]
"""(tenant, collection)"""
UNLEASED_LOADS = 3
"""Whole loads tried outside the lease before one is made under it (the log moved on too far meanwhile each time)."""


@dataclass
class _Copy:
    vectors: TenantVectors
    seq: int
    """The log's `seq` this copy is known to contain every write up to."""


class Write(Enum):
    INSERT = "insert"
    UPSERT = "upsert"
    DELETE = "delete"


class TenantVectorsHeld:
    """A tenant's vectors of one collection while this replica holds the tenant's lease: read them, add to them."""

    def __init__(self, index: "VectorIndex", key: CopyKey, copy: _Copy, lease: HeldLease, log_entry: VectorLogEntry):
        self._index, self._key, self._copy, self._lease, self._log_entry = index, key, copy, lease, log_entry

    def stored(self, sightings: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredVector]:
        return self._copy.vectors.stored(sightings)

    def counts(self, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        return self._copy.vectors.counts(persons)

    async def search(self, vectors: Vectors, limit: int, floor: float = -1.0) -> list[list[Candidate]]:
        """Exact: every row of the tenant is compared (in a worker thread: numpy releases the GIL meanwhile)."""
        return await asyncio.to_thread(self._copy.vectors.search, vectors, limit, floor)

    async def insert(self, rows: Sequence[StoredVector]) -> None:
        if rows:
            self._log_entry = await self._index.write(self._key, self._lease, self._log_entry, rows, Write.INSERT)


class VectorIndex:
    def __init__(
        self, store: FaceVectorStore, lease: TenantLease, log: VectorLog, max_vectors_in_memory: int | None = None
    ) -> None:
        self.store, self.lease, self.log = store, lease, log
        self._max_vectors = max_vectors_in_memory
        self._copies: dict[CopyKey, _Copy] = {}
        self._loads: dict[CopyKey, asyncio.Lock] = {}
        self._in_use: Counter[CopyKey] = Counter()

    @asynccontextmanager
    async def holding(self, tenant_id: str, model: str, dim: int) -> AsyncIterator[TenantVectorsHeld]:
        """Hold the tenant's lease for the model's collection, with this replica's copy brought up to date."""
        collection = await self._collection(model, dim)  # created and loaded before the tenant's lease is taken
        key = (tenant_id, collection)
        self._in_use[key] += 1
        try:
            for attempt in range(UNLEASED_LOADS):
                await self._load_unleased(key, dim)
                async with self.lease.hold(tenant_id, collection) as lease:
                    entry = await self.log.read(tenant_id, collection)
                    if attempt < UNLEASED_LOADS - 1 and not self._reaches(key, entry):
                        self._copies.pop(key, None)  # too far behind: loaded again once the lease is let go
                        continue
                    copy = await self._current_copy(key, dim, entry)
                    yield TenantVectorsHeld(self, key, copy, lease, entry)
                    return
        finally:
            self._in_use[key] -= 1
            if not self._in_use[key]:
                del self._in_use[key]
            self._evict_beyond_bound(key)

    def vectors_in_memory(self) -> int:
        """Rows held in every copy of this replica."""
        return sum(len(copy.vectors) for copy in self._copies.values())

    async def _collection(self, model: str, dim: int) -> str:
        """The model's collection; the first use of a model is under a lease of its own, so two replicas never
        both create it (the loser's failed call logged a pymilvus traceback)."""
        name = self.store.name_of(model)
        if self.store.is_loaded(name):
            return await self.store.collection(model, dim)
        async with self.lease.hold(COLLECTIONS_LEASE, name):
            return await self.store.collection(model, dim)

    async def rewrite(self, tenant_id: str, located: Sequence[CollectionRows], delete: bool = False) -> None:
        """Upsert (a relabel) or delete rows of the tenant in each collection, each under the tenant's lease. A copy
        this replica holds is updated if it was current, else it catches up from the log when next held."""
        for part in located:
            if not part.rows:
                continue
            async with self.lease.hold(tenant_id, part.collection) as lease:
                entry = await self.log.read(tenant_id, part.collection)
                operation = Write.DELETE if delete else Write.UPSERT
                await self.write((tenant_id, part.collection), lease, entry, part.rows, operation)

    async def write(
        self, key: CopyKey, lease: HeldLease, entry: VectorLogEntry, rows: Sequence[StoredVector], operation: Write
    ) -> VectorLogEntry:
        """Fence, log the write, write to Milvus, apply it to the copy if the copy was at `entry`.

        The log is written first: a replica killed between the two leaves ids in the log that the next holder
        re-reads from Milvus (finding the rows if the write landed, nothing if not), where the other order lost
        rows no copy would ever load (a burst split in two persons in the kill -9 test). If the log moved since
        `entry` (a holder that had lost its lease wrote), nothing is written and the copy is dropped."""
        tenant_id, collection = key
        await lease.fence()
        try:
            written = await self.log.append(tenant_id, collection, entry, [row.sighting_id for row in rows])
        except VectorLogConflict:
            self._copies.pop(key, None)
            raise
        if operation is Write.DELETE:
            await self.store.delete([CollectionRows(collection, list(rows))])
        elif operation is Write.UPSERT:
            await self.store.upsert([CollectionRows(collection, list(rows))])
        else:
            await self.store.insert_into(collection, rows)
        copy = self._copies.get(key)
        if copy is not None and copy.seq == entry.state.seq:
            if operation is Write.DELETE:
                copy.vectors.remove(row.sighting_id for row in rows)
            else:
                copy.vectors.put(list(rows))
            copy.seq = written.state.seq
        return written

    def _reaches(self, key: CopyKey, entry: VectorLogEntry) -> bool:
        """Whether the copy can be brought to `entry` by re-reading the rows the log names."""
        copy = self._copies.get(key)
        return copy is not None and entry.state.changed_since(copy.seq) is not None

    async def _load_unleased(self, key: CopyKey, dim: int) -> None:
        """Load the tenant's copy if this replica has none, without holding the lease; one load per key at a time."""
        if key in self._copies:
            return
        async with self._loads.setdefault(key, asyncio.Lock()):
            if key in self._copies:
                return
            tenant_id, collection = key
            entry = await self.log.read(tenant_id, collection)
            vectors = await self._load(key, dim, leased=False)
            # the write logged last may still have been on its way to Milvus: re-read under the lease
            self._copies[key] = _Copy(vectors, max(entry.state.seq - 1, 0))
            MATCHER_VECTORS_IN_MEMORY.set(self.vectors_in_memory())

    async def _load(self, key: CopyKey, dim: int, leased: bool) -> TenantVectors:
        tenant_id, collection = key
        started = time.perf_counter()
        rows, matrix = await self.store.tenant_vectors(collection, tenant_id)
        vectors = TenantVectors(dim)
        vectors.put(rows, matrix)
        seconds = round(time.perf_counter() - started, 2)
        log.info("tenant_vectors_loaded", tenant_id=tenant_id, collection=collection, rows=len(rows), seconds=seconds,
                 under_lease=leased)  # fmt: skip
        return vectors

    async def _current_copy(self, key: CopyKey, dim: int, entry: VectorLogEntry) -> _Copy:
        copy = self._copies.get(key)
        changed = entry.state.changed_since(copy.seq) if copy is not None else None
        if copy is None or changed is None:
            copy = self._copies[key] = _Copy(await self._load(key, dim, leased=True), entry.state.seq)
        elif changed:
            tenant_id, collection = key
            rows = await self.store.rows(collection, tenant_id, list(changed))
            copy.vectors.remove(changed)
            copy.vectors.put(rows)
            copy.seq = entry.state.seq
        MATCHER_VECTORS_IN_MEMORY.set(self.vectors_in_memory())
        return copy

    def _evict_beyond_bound(self, just_used: CopyKey) -> None:
        """Drop the copies held least recently until the rows held are within the bound; a copy in use, or the one
        just used, is never dropped (a tenant larger than the bound alone is kept, not reloaded every batch)."""
        if just_used in self._copies:
            self._copies[just_used] = self._copies.pop(just_used)  # dicts keep order: most recently used last
        if self._max_vectors is None:
            return
        held = self.vectors_in_memory()
        for key in [key for key in self._copies if key not in self._in_use and key != just_used]:
            if held <= self._max_vectors:
                break
            held -= len(self._copies.pop(key).vectors)
            log.info("tenant_vectors_dropped", tenant_id=key[0], collection=key[1], held=held)
        MATCHER_VECTORS_IN_MEMORY.set(held)
