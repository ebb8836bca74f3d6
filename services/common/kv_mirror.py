"""An in-memory copy of a NATS KV bucket kept current by a watcher, for state read on every message.

The matcher consults the staff gallery and the not-same pairs for every face, ingest the registry for every
event; a KV round trip per face would dominate a batch, so each replica mirrors the bucket and reads memory.
`start` returns once the bucket's current values are applied, so a service never serves with an empty copy
of a full bucket.

The mirror supervises its watcher rather than trusting it. nats-py re-creates a watch's ordered consumer
from a background task after missed heartbeats, with nothing to say whether that worked; and a bucket
re-created by a NATS restart without its data starts its revisions again from 1, after which the old watch
(resuming after its last revision) sees nothing. Every `check_seconds` the mirror compares the revision it
applied with the bucket's last one: a watch that fell behind and made no progress for a whole interval, a
bucket whose last revision went backwards, or a watch that ended is replaced by a new one, which re-reads
every current value and deletes the keys that vanished (with backoff while NATS is unreachable). Restarts
are logged and counted, and the time the mirror was last confirmed current is exported, so a stale mirror
is visible (services/common/metrics.py).
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Literal

import nats.errors
import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from services.common.bus import open_bucket
from services.common.logging import get_logger
from services.common.metrics import KV_MIRROR_CURRENT_AT, KV_MIRROR_RESTARTS

log = get_logger(__name__)
ApplyEntry = Callable[[str, bytes | None], None]
"""Called with a key and its new value, or None when the key was deleted or purged."""
DELETED = frozenset({"DEL", "PURGE"})
LOAD_TIMEOUT_SECONDS = 30
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.5, 30.0
NATS_UNAVAILABLE = (nats.errors.Error, TimeoutError)
"""What a KV call raises while NATS is down, restarting or the bucket not yet re-created."""


async def state_bucket(connection: NatsClient, name: str, replicas: int = 1) -> KeyValue:
    """A bucket of current state (latest value per key, on file), created by the first service that starts."""
    config = nats.js.api.KeyValueConfig(bucket=name, history=1, storage=nats.js.api.StorageType.FILE, replicas=replicas)
    return await open_bucket(connection, config)


WatchVerdict = Literal["current", "behind", "watch_stalled", "bucket_revision_went_back"]


def judge_watch(applied: int, last: int, awaited: tuple[int, int] | None) -> WatchVerdict:
    """Whether a watch keeps up with its bucket, from the revision it applied and the bucket's last one.

    `awaited` is (applied, last) of the previous check when the mirror was behind then: an entry may be in
    transit at one check, but a mirror still at the same revision a whole interval later has stalled."""
    if last < applied:
        return "bucket_revision_went_back"
    if awaited is not None and applied == awaited[0] < awaited[1]:
        return "watch_stalled"
    return "current" if last == applied else "behind"


async def current_keys(bucket: KeyValue) -> set[str]:
    """The bucket's live keys, read up to its last revision as of this call.

    nats-py's `KeyValue.keys()` ends at the watch's "nothing pending" marker, which it may put before the first
    value arrives when it reads the consumer's pending count too early (seen as a retention run that found no
    tenant in a busy registry). Reading until the bucket's last revision has no such race."""
    last_revision = int((await bucket.status()).stream_info.state.last_seq)
    if last_revision == 0:
        return set()
    watcher = await bucket.watchall(meta_only=True)
    keys: set[str] = set()
    try:
        while True:
            entry = await watcher.updates(timeout=LOAD_TIMEOUT_SECONDS)  # type: ignore[no-untyped-call]
            if entry is None:  # the marker: early, or the last revision is gone (a purge); read on until it times out
                continue
            if entry.operation in DELETED:
                keys.discard(entry.key)
            else:
                keys.add(entry.key)
            if entry.revision >= last_revision:
                return keys
    except (TimeoutError, nats.errors.TimeoutError):
        return keys  # nothing more came: every revision there is has been read
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


class KvMirror:
    """Applies every value of `bucket` to `apply`, then every change, for as long as it runs."""

    def __init__(self, bucket: KeyValue, apply: ApplyEntry, check_seconds: float = 10.0) -> None:
        self._bucket, self._apply, self._check_seconds = bucket, apply, check_seconds
        self._name: str = bucket._name
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._keys: set[str] = set()
        self._revision = 0
        """The bucket's revision the mirror holds: its last applied entry's, or the bucket's last at a (re-)read."""
        self._awaited: tuple[int, int] | None = None
        """(revision applied, bucket's last revision) at the previous check, when the mirror was behind."""

    async def start(self) -> None:
        """Apply every current value, then keep applying changes in the background."""
        KV_MIRROR_RESTARTS.labels(self._name)  # exported at 0 from the start
        await self._load()
        KV_MIRROR_CURRENT_AT.labels(self._name).set(time.time())
        self._task = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stop_watcher()

    async def _load(self) -> None:
        """A new watch: apply every current value, delete the mirrored keys the bucket no longer holds."""
        last_revision = await self._last_revision()
        watcher = await self._bucket.watchall()
        present: set[str] = set()
        revision = 0
        try:
            while (entry := await watcher.updates(timeout=LOAD_TIMEOUT_SECONDS)) is not None:  # type: ignore[no-untyped-call]
                self._apply_entry(entry)
                revision = max(revision, entry.revision)
                if entry.operation not in DELETED:
                    present.add(entry.key)
        except BaseException:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
            raise
        for key in self._keys - present:
            self._apply_deletion(key)
        self._watcher, self._revision, self._awaited = watcher, max(revision, last_revision), None

    async def _supervise(self) -> None:
        """Follow the watch; replace it whenever it ends or stalls, until cancelled."""
        while True:
            reason = await self._follow_until_unhealthy()
            await self._restart(reason)

    async def _follow_until_unhealthy(self) -> str:
        assert self._watcher is not None
        follow = asyncio.create_task(self._follow(self._watcher))
        try:
            while True:
                done, _ = await asyncio.wait({follow}, timeout=self._check_seconds)
                if done:
                    error = follow.exception()
                    return "watch_ended" if error is None else f"watch_failed: {error!r}"
                if (reason := await self._check_progress()) is not None:
                    return reason
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply_entry(entry)
                self._revision = max(self._revision, entry.revision)

    async def _check_progress(self) -> str | None:
        """Why the watch must be replaced, or None while it keeps up (or NATS cannot tell: it is down)."""
        try:
            last_revision = await self._last_revision()
        except NATS_UNAVAILABLE:
            self._awaited = None  # an outage is not the watch's fault; judge it again once NATS answers
            return None
        verdict = judge_watch(self._revision, last_revision, self._awaited)
        self._awaited = (self._revision, last_revision) if verdict == "behind" else None
        if verdict == "current":
            KV_MIRROR_CURRENT_AT.labels(self._name).set(time.time())
        return verdict if verdict in ("watch_stalled", "bucket_revision_went_back") else None

    async def _last_revision(self) -> int:
        """The revision of the bucket's last entry (its stream's last sequence)."""
        return int((await self._bucket.status()).stream_info.state.last_seq)

    async def _restart(self, reason: str) -> None:
        """Replace the watch by a full re-read, retrying with backoff while NATS is unreachable."""
        log.warning("kv_mirror_restarting", bucket=self._name, reason=reason, revision=self._revision)
        await self._stop_watcher()
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                await self._load()
                break
            except Exception as error:  # NATS unreachable, or `apply` failing: say so on every try, never give up
                log.warning("kv_mirror_restart_failed", bucket=self._name, error=repr(error), retry_in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
        KV_MIRROR_RESTARTS.labels(self._name).inc()
        KV_MIRROR_CURRENT_AT.labels(self._name).set(time.time())
        log.warning(
            "kv_mirror_restarted", bucket=self._name, reason=reason, revision=self._revision, keys=len(self._keys)
        )

    async def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            with contextlib.suppress(Exception):  # the connection may be down or closed; nothing to release then
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _apply_entry(self, entry: KeyValue.Entry) -> None:
        if entry.operation in DELETED:
            self._apply_deletion(entry.key)
            return
        try:
            self._apply(entry.key, entry.value)
        except ValueError as error:  # a malformed value is skipped, loudly, never applied half
            log.error("kv_entry_invalid", bucket=entry.bucket, key=entry.key, error=str(error))
            return
        self._keys.add(entry.key)

    def _apply_deletion(self, key: str) -> None:
        self._apply(key, None)
        self._keys.discard(key)
