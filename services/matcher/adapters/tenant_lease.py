"""A renewed, fenced lease per tenant and collection: one writer of a tenant's vectors at a time, across replicas.

Two replicas that each receive part of one burst of a new face would otherwise both miss in the search and each
create a person. A replica holds the lease (NATS KV bucket `matcher_leases`, key `<tenant>.<collection>`,
created with `create`, so only one holder) while it searches, decides and stores a batch of that tenant, or while
a lifecycle step or retention rewrites its vectors. Leases of different tenants are independent: replicas run
different tenants in parallel and nothing is global.

- Renewed: while held, the holder rewrites the entry every third of the TTL (revision-checked), so a batch
  that outlives the TTL (the first load of a large tenant) keeps its lease.
- Fenced: `fence()` renews at once and raises `LeaseLost` if the entry is no longer this holder's revision
  (it expired while this process was stalled, and another replica may hold it now). Writers call it just
  before writing to Milvus, so a holder that lost its lease writes nothing.
- Handed over: a replica that dies stops renewing; its entries expire after the bucket's TTL
  (`REVISIT_LEASE_TTL_SECONDS`, a few seconds) and another replica takes the tenant.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats.errors
import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.common.bus import open_bucket
from services.common.logging import get_logger

BUCKET = "matcher_leases"
WAIT_POLL_SECONDS = 0.05
log = get_logger(__name__)


class LeaseTimeout(TimeoutError):
    """Another replica held the lease longer than the wait allows (the event is retried through redelivery)."""


class LeaseLost(RuntimeError):
    """The lease expired while held (this process stalled past its TTL); nothing more may be written under it."""


def lease_key(tenant_id: str, collection: str) -> str:
    return f"{tenant_id}.{collection}"


class HeldLease:
    """One holding of one key: renewed in the background until released. Renewals (periodic or a fence) take
    turns, so two never race with the same expected revision."""

    def __init__(self, bucket: KeyValue, key: str, holder: bytes, revision: int, ttl: float) -> None:
        self._bucket, self.key, self._holder, self._revision, self._ttl = bucket, key, holder, revision, ttl
        self._lost: BaseException | None = None
        self._turn = asyncio.Lock()
        self._released = asyncio.Event()
        self._renewal = asyncio.create_task(self._renew_periodically())

    async def fence(self) -> None:
        """Renew now; raises `LeaseLost` unless this holder still held the lease up to this instant."""
        await self._renew()
        if self._lost is not None:
            raise LeaseLost(f"lease {self.key} was lost: {self._lost!r}")

    async def release(self) -> None:
        self._released.set()
        await asyncio.wait([self._renewal])  # ends at once, or after the renewal in flight
        async with self._turn:
            if self._lost is not None:
                return
            try:
                await self._bucket.delete(self.key, last=self._revision)
            except (KeyWrongLastSequenceError, KeyNotFoundError, nats.errors.Error) as error:
                log.warning("lease_release_failed", key=self.key, error=repr(error))

    async def _renew_periodically(self) -> None:
        while self._lost is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self._ttl / 3)
                return
            try:
                await self._renew()
            except (TimeoutError, nats.errors.Error) as error:  # NATS slow or reconnecting: the next try may pass
                log.warning("lease_renewal_failed", key=self.key, error=repr(error))

    async def _renew(self) -> None:
        async with self._turn:
            if self._lost is not None:
                return
            try:
                self._revision = await self._bucket.update(self.key, self._holder, last=self._revision)
            except (KeyWrongLastSequenceError, KeyNotFoundError) as error:
                self._lost = error
                log.warning("lease_lost", key=self.key, error=repr(error))


class TenantLease:
    def __init__(self, bucket: KeyValue, ttl_seconds: float, wait_seconds: float) -> None:
        self._bucket, self._ttl, self._wait = bucket, ttl_seconds, wait_seconds
        self._holder = uuid.uuid4().hex.encode()
        self._local: dict[str, asyncio.Lock] = {}
        """Tasks of this process queue here first, so only one of them at a time asks NATS for a key."""

    @classmethod
    async def open(
        cls, connection: NatsClient, ttl_seconds: float, replicas: int = 1, wait_seconds: float = 20.0
    ) -> "TenantLease":
        config = nats.js.api.KeyValueConfig(
            bucket=BUCKET, history=1, ttl=ttl_seconds, storage=nats.js.api.StorageType.MEMORY, replicas=replicas
        )
        return cls(await open_bucket(connection, config), ttl_seconds, wait_seconds)

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    @asynccontextmanager
    async def hold(
        self, tenant_id: str, collection: str, wait_seconds: float | None = None
    ) -> AsyncIterator[HeldLease]:
        """Wait (by default `REVISIT_LEASE_WAIT_SECONDS`: a live holder renews, a dead one's entry expires within
        the TTL) until no other replica holds this tenant's collection, then hold it, renewed, until the block ends."""
        key = lease_key(tenant_id, collection)
        local = self._local.setdefault(key, asyncio.Lock())
        async with local:
            held = HeldLease(self._bucket, key, self._holder, await self._acquire(key, wait_seconds), self._ttl)
            try:
                yield held
            finally:
                await held.release()

    async def _acquire(self, key: str, wait_seconds: float | None) -> int:
        deadline = time.monotonic() + (self._wait if wait_seconds is None else wait_seconds)
        while True:
            try:
                return await self._bucket.create(key, self._holder)
            except KeyWrongLastSequenceError:
                if time.monotonic() > deadline:
                    raise LeaseTimeout(f"lease {key} still held by another matcher") from None
                await asyncio.sleep(WAIT_POLL_SECONDS)
