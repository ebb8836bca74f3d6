"""An in-memory copy of a NATS KV bucket kept current by a watcher, for state read on every message.

The matcher consults the staff gallery and the not-same pairs for every face, ingest the registry for every
event; a KV round trip per face would dominate a batch, so each replica mirrors the bucket and reads memory.
`start` returns once the bucket's current values are applied, so a service never serves with an empty copy
of a full bucket.
"""

import asyncio
import contextlib
from collections.abc import Callable

import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from services.common.bus import open_bucket
from services.common.logging import get_logger

log = get_logger(__name__)
ApplyEntry = Callable[[str, bytes | None], None]
"""Called with a key and its new value, or None when the key was deleted or purged."""
DELETED = frozenset({"DEL", "PURGE"})


async def state_bucket(connection: NatsClient, name: str, replicas: int = 1) -> KeyValue:
    """A bucket of current state (latest value per key, on file), created by the first service that starts."""
    config = nats.js.api.KeyValueConfig(bucket=name, history=1, storage=nats.js.api.StorageType.FILE, replicas=replicas)
    return await open_bucket(connection, config)


class KvMirror:
    def __init__(self, bucket: KeyValue, apply: ApplyEntry) -> None:
        self._bucket, self._apply = bucket, apply
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self) -> None:
        """Apply every current value, then keep applying changes in the background."""
        self._watcher = watcher = await self._bucket.watchall()
        while (entry := await watcher.updates(timeout=30)) is not None:  # type: ignore[no-untyped-call]
            self._apply_entry(entry)
        self._task = asyncio.create_task(self._follow(watcher))

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):  # the connection may already be closed; nothing to release then
                await self._watcher.stop()  # type: ignore[no-untyped-call]
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply_entry(entry)

    def _apply_entry(self, entry: KeyValue.Entry) -> None:
        try:
            self._apply(entry.key, None if entry.operation in DELETED else entry.value)
        except ValueError as error:  # a malformed value is skipped, loudly, never applied half
            log.error("kv_entry_invalid", bucket=entry.bucket, key=entry.key, error=str(error))
