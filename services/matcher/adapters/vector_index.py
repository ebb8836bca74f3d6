"""The matcher's view of a tenant's face vectors: an exact in-memory copy per tenant and collection, searched under
the tenant's lease and kept in step with Milvus (the durable store) across replicas.

Every write of a tenant's vectors, by any replica or by the retention job, runs under the tenant's lease
(`adapters.tenant_lease`), is fenced, and is appended to the vector log (`adapters.vector_log`) just before it
reaches Milvus. Under the lease a replica reads the log first: if its copy is at the log's `seq` it
searches at once; if it is a few writes behind it re-reads only those rows by primary key; else (a first use,
a new replica, a takeover after a crash) it loads the tenant's rows from Milvus. So two replicas never decide
on different views of a tenant: the one that holds the lease sees every vector stored before it.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum

from services.common.logging import get_logger
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


@dataclass
class _Copy:
    vectors: TenantVectors
    seq: int


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
    def __init__(self, store: FaceVectorStore, lease: TenantLease, log: VectorLog) -> None:
        self.store, self.lease, self.log = store, lease, log
        self._copies: dict[CopyKey, _Copy] = {}

    @asynccontextmanager
    async def holding(self, tenant_id: str, model: str, dim: int) -> AsyncIterator[TenantVectorsHeld]:
        """Hold the tenant's lease for the model's collection, with this replica's copy brought up to date."""
        collection = await self._collection(model, dim)  # created and loaded before the tenant's lease is taken
        key = (tenant_id, collection)
        async with self.lease.hold(tenant_id, collection) as lease:
            entry = await self.log.read(tenant_id, collection)
            copy = await self._current_copy(key, dim, entry)
            yield TenantVectorsHeld(self, key, copy, lease, entry)

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

    async def _current_copy(self, key: CopyKey, dim: int, entry: VectorLogEntry) -> _Copy:
        tenant_id, collection = key
        copy = self._copies.get(key)
        changed = entry.state.changed_since(copy.seq) if copy is not None else None
        if copy is None or changed is None:
            rows, matrix = await self.store.tenant_vectors(collection, tenant_id)
            vectors = TenantVectors(dim)
            vectors.put(rows, matrix)
            copy = self._copies[key] = _Copy(vectors, entry.state.seq)
            log.info("tenant_vectors_loaded", tenant_id=tenant_id, collection=collection, rows=len(rows))
        elif changed:
            rows = await self.store.rows(collection, tenant_id, list(changed))
            copy.vectors.remove(changed)
            copy.vectors.put(rows)
            copy.seq = entry.state.seq
        return copy
