"""Which stored vectors changed lately, per tenant and collection: how a replica's in-memory copy catches up.

Every write of a tenant's vectors in a collection (a match inserting, a merge, split or kind change
relabelling, an erasure or retention deleting) happens under that tenant's lease (`adapters.tenant_lease`)
and first appends the sighting ids it will touch to the NATS KV entry `matcher_vector_log`, key
`<tenant>.<collection>`: a counter `seq` and the ids of the last `KEPT_CHANGES` writes. A replica whose copy is
at `seq` n re-reads from Milvus only the rows written since (a primary-key `get`, milliseconds); one that fell
further behind, or has no copy, loads the tenant's rows whole. The append is revision-checked, so two writers
can never both believe they extended the same version.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from services.common.kv_mirror import state_bucket

BUCKET = "matcher_vector_log"
KEPT_CHANGES = 16
"""Writes remembered per tenant and collection: a replica more than this many writes behind reloads whole."""


class VectorLogConflict(RuntimeError):
    """The log moved since it was read: another writer got in, so this replica's copy is no longer known good."""


class VectorLogState(BaseModel):
    seq: int = 0
    changes: list[tuple[int, list[uuid.UUID]]] = []
    """(seq, sighting ids written at that seq), oldest first, at most `KEPT_CHANGES`."""

    def changed_since(self, seq: int) -> set[uuid.UUID] | None:
        """The sightings written after `seq`, or None if the log no longer reaches back that far."""
        if seq == self.seq:
            return set()
        if seq > self.seq or not self.changes or self.changes[0][0] > seq + 1:
            return None
        return {sighting for at, ids in self.changes if at > seq for sighting in ids}

    def appended(self, sightings: Iterable[uuid.UUID]) -> "VectorLogState":
        seq = self.seq + 1
        return VectorLogState(seq=seq, changes=[*self.changes, (seq, sorted(set(sightings)))][-KEPT_CHANGES:])


@dataclass(frozen=True)
class VectorLogEntry:
    state: VectorLogState
    revision: int
    """The KV revision read (0: no entry yet), which an append must still find."""


def log_key(tenant_id: str, collection: str) -> str:
    return f"{tenant_id}.{collection}"


class VectorLog:
    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "VectorLog":
        return cls(await state_bucket(connection, BUCKET, replicas))

    async def read(self, tenant_id: str, collection: str) -> VectorLogEntry:
        try:
            entry = await self._bucket.get(log_key(tenant_id, collection))
        except KeyNotFoundError:
            return VectorLogEntry(VectorLogState(), 0)
        state = VectorLogState.model_validate_json(entry.value) if entry.value else VectorLogState()
        return VectorLogEntry(state, entry.revision or 0)

    async def append(
        self, tenant_id: str, collection: str, read: VectorLogEntry, sightings: Iterable[uuid.UUID]
    ) -> VectorLogEntry:
        """Record a write of `sightings`, only if the log is still at `read`; raises `VectorLogConflict` if not."""
        key, state = log_key(tenant_id, collection), read.state.appended(sightings)
        value = state.model_dump_json().encode()
        try:
            if read.revision == 0:
                revision = await self._bucket.create(key, value)
            else:
                revision = await self._bucket.update(key, value, last=read.revision)
        except KeyWrongLastSequenceError as error:
            raise VectorLogConflict(f"vector log {key} moved past revision {read.revision}") from error
        return VectorLogEntry(state, revision)
