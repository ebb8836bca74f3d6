"""Serialises "search, then create a person" per tenant and embedding model across matcher replicas.

Two replicas that each receive part of one burst of a new face would otherwise both miss in the search
and each create a person. A lease in a NATS KV bucket (`matcher_leases`, key `<tenant>.<model hash>`)
makes the group's find-search-insert atomic across replicas. Entries expire after the bucket TTL, so a
replica that dies holding a lease blocks the others for at most that long.
"""

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats.errors
import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.common.bus import open_bucket
from services.common.logging import get_logger

BUCKET = "matcher_leases"
log = get_logger(__name__)


class LeaseTimeout(TimeoutError):
    """Another replica held the lease longer than the wait allows (it retries through redelivery)."""


def lease_key(tenant_id: str, embedding_model: str) -> str:
    return f"{tenant_id}.{hashlib.sha256(embedding_model.encode()).hexdigest()[:16]}"


class PersonCreationLease:
    def __init__(self, bucket: KeyValue, ttl_seconds: float) -> None:
        self._bucket, self._ttl = bucket, ttl_seconds
        self._holder = uuid.uuid4().hex.encode()

    @classmethod
    async def open(cls, connection: NatsClient, ttl_seconds: float, replicas: int = 1) -> "PersonCreationLease":
        config = nats.js.api.KeyValueConfig(
            bucket=BUCKET, history=1, ttl=ttl_seconds, storage=nats.js.api.StorageType.MEMORY, replicas=replicas
        )
        return cls(await open_bucket(connection, config), ttl_seconds)

    @asynccontextmanager
    async def hold(self, tenant_id: str, embedding_model: str) -> AsyncIterator[None]:
        """Wait (at most the TTL) until no other replica holds this tenant and model, then hold it."""
        key = lease_key(tenant_id, embedding_model)
        revision = await self._acquire(key)
        started = time.monotonic()
        try:
            yield
        finally:
            held = time.monotonic() - started
            if held > self._ttl / 2:
                log.warning("lease_held_long", key=key, seconds=round(held, 1), ttl=self._ttl)
            try:
                await self._bucket.delete(key, last=revision)
            except (KeyWrongLastSequenceError, nats.errors.Error) as error:  # expired meanwhile: nothing to free
                log.warning("lease_release_failed", key=key, error=repr(error))

    async def _acquire(self, key: str) -> int:
        deadline, delay = time.monotonic() + self._ttl, 0.005
        while True:
            try:
                return await self._bucket.create(key, self._holder)
            except KeyWrongLastSequenceError:
                if time.monotonic() > deadline:
                    raise LeaseTimeout(f"lease {key} still held by another matcher after {self._ttl:.0f}s") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
