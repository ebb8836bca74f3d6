"""The staff filter: faces close to the tenant's staff gallery are not published.

Staff walk past the cameras all day; counting them would swamp the visitor figures, and publishing
their faces would store employees' biometrics for nothing. Identity (or `python -m edge enrol-staff`)
writes one `StaffGalleryEntry` per staff member into the NATS KV bucket `staff_gallery`, key
`<tenant>.<staff_id>`. The edge loads `<tenant>.*` at start and keeps a KV watch open, so an enrolment or
a removal applies within a second while it runs. The matcher still marks staff on the server, for the
faces this filter misses.
"""

import contextlib
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
import numpy as np
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, JetStreamManager
from nats.js.api import ConsumerConfig, ConsumerInfo
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from numpy.typing import NDArray
from pydantic import ValidationError

from edge.embedder import Vectors, l2_normalise
from plumbing.logging import get_logger
from plumbing.startup import DependencyUnavailable
from schemas.models import embedding_dimension
from schemas.staff import StaffGalleryEntry
from schemas.subjects import STAFF_GALLERY_BUCKET, staff_gallery_key

log = get_logger(__name__)


def max_similarities(vectors: Vectors, gallery: Vectors) -> NDArray[np.float32]:
    """For each L2-normalised row of `vectors`, its highest cosine similarity to a row of `gallery`."""
    if len(gallery) == 0 or len(vectors) == 0:
        return np.full(len(vectors), -1.0, dtype=np.float32)
    return np.asarray((vectors @ gallery.T).max(axis=1), dtype=np.float32)


class InvalidStaffEntry(ValueError):
    """An entry whose vectors can never be compared with the edge's (wrong dimension, or mixed lengths)."""


def check_entry_vectors(entry: StaffGalleryEntry) -> None:
    """Raise InvalidStaffEntry unless the entry's vectors share one length, the model's when the registry knows it.

    Such an entry is skipped on its own: before this check, one 64-number entry under a 128-d model id made
    the gallery's matrix ragged and every later entry, valid or not, was refused with it."""
    lengths = sorted({len(vector) for vector in entry.embeddings})
    expected = embedding_dimension(entry.embedding_model)
    if len(lengths) > 1:
        raise InvalidStaffEntry(f"its vectors have different lengths {lengths}")
    if expected is not None and lengths != [expected]:
        raise InvalidStaffEntry(f"its vectors have {lengths[0]} numbers, {entry.embedding_model} makes {expected}")


class StaffGallery:
    """The staff vectors of one tenant, by embedding model and dimension.

    Written by the KV watcher on the event loop, read by the camera pipelines in worker threads: each
    change builds new matrices and swaps one reference, so a reader never sees half an update.
    """

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._entries: dict[str, StaffGalleryEntry] = {}
        self._by_model: Mapping[tuple[str, int], Vectors] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, staff_id: object) -> bool:
        return staff_id in self._entries

    def put(self, entry: StaffGalleryEntry) -> None:
        """Add or replace the entry; an invalid one raises (ValueError) and changes nothing."""
        if entry.tenant_id != self.tenant_id:
            raise ValueError(f"entry of tenant {entry.tenant_id} offered to the gallery of {self.tenant_id}")
        check_entry_vectors(entry)
        with self._lock:
            self._entries[entry.staff_id] = entry
            self._rebuild()

    def remove(self, staff_id: str) -> None:
        with self._lock:
            if self._entries.pop(staff_id, None) is not None:
                self._rebuild()

    def _rebuild(self) -> None:
        """One matrix per (model, dimension): entries of a model the registry does not know may differ in
        length, and grouping by length as well keeps one of them from making a matrix ragged."""
        rows: dict[tuple[str, int], list[list[float]]] = {}
        for entry in self._entries.values():
            rows.setdefault((entry.embedding_model, len(entry.embeddings[0])), []).extend(entry.embeddings)
        self._by_model = {key: l2_normalise(np.asarray(vectors, dtype=np.float32)) for key, vectors in rows.items()}

    def similarities(self, vectors: Vectors, embedding_model: str) -> NDArray[np.float32]:
        """Each vector's best similarity to a staff vector of the same model (-1 when there is none)."""
        gallery = self._by_model.get((embedding_model, vectors.shape[1]))
        if gallery is None:
            return np.full(len(vectors), -1.0, dtype=np.float32)
        return max_similarities(vectors, gallery)


class StaffGalleryWatcher:
    """Keeps a `StaffGallery` equal to the tenant's keys of the bucket, for as long as `run` runs."""

    def __init__(self, bucket: KeyValue, gallery: StaffGallery) -> None:
        self.gallery = gallery
        self._bucket = bucket
        self._watcher: KeyValue.KeyWatcher | None = None

    async def load(self, timeout_seconds: float) -> None:
        """Start the watch and apply the current entries (the watch marks their end with a None)."""
        self._watcher = await self._bucket.watch(f"{self.gallery.tenant_id}.*")
        while (entry := await self._watcher.updates(timeout_seconds)) is not None:  # type: ignore[no-untyped-call]
            self._apply(entry)
        log.info("staff_gallery_loaded", tenant=self.gallery.tenant_id, staff=len(self.gallery))

    async def run(self) -> None:
        """Apply changes as they come, until cancelled or stopped."""
        if self._watcher is None:
            raise RuntimeError("load() the staff gallery before running its watch")
        async for entry in self._watcher:
            if entry is not None:
                self._apply(entry)

    def _apply(self, entry: KeyValue.Entry) -> None:
        staff_id = entry.key.removeprefix(f"{self.gallery.tenant_id}.")
        if entry.operation in (KV_DEL, KV_PURGE):
            self.gallery.remove(staff_id)
            log.info("staff_removed", tenant=self.gallery.tenant_id, staff_id=staff_id)
            return
        try:
            value = StaffGalleryEntry.model_validate_json(entry.value or b"")
            if staff_gallery_key(value.tenant_id, value.staff_id) != entry.key:
                raise ValueError(f"key {entry.key} holds the entry of {value.tenant_id}.{value.staff_id}")
            self.gallery.put(value)
        except (ValidationError, ValueError) as error:  # skip this entry alone, once per revision: say which and why
            log.error("staff_entry_skipped", key=entry.key, revision=entry.revision, error=str(error)[:500])
            return
        log.info("staff_enrolled", tenant=self.gallery.tenant_id, staff_id=staff_id, vectors=len(value.embeddings))

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._watcher.stop()  # type: ignore[no-untyped-call]


class NamedConsumerManager(JetStreamManager):
    """Creates every consumer under a name chosen here, as the Go client does.

    nats-py creates the ordered consumer of a KV watch without a name, which goes to
    `$JS.API.CONSUMER.CREATE.<stream>`: a subject that says nothing of the filter, so a device allowed it could
    read every tenant's staff. Named, the request goes to `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>` and
    the server refuses a filter other than the one the device's permissions name. A reset of the ordered
    consumer creates the next one under a new name."""

    async def add_consumer(
        self,
        stream: str,
        config: ConsumerConfig | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (nats-py's signature, overridden)
        **params: Any,
    ) -> ConsumerInfo:
        named = (config or ConsumerConfig()).evolve(**params)
        if not named.name and not named.durable_name:
            named = named.evolve(name=f"edge-{uuid.uuid4().hex}")
        return await super().add_consumer(stream, named, timeout)


class NamedConsumerJetStream(JetStreamContext):
    """A JetStream context whose consumers are created by `NamedConsumerManager`."""

    @property
    def _jsm(self) -> JetStreamManager:
        return NamedConsumerManager(conn=self._nc, prefix=self._prefix, timeout=self._timeout)


def staff_gallery_bucket(connection: NatsClient, timeout_seconds: float) -> KeyValue:
    """The staff gallery to watch, without asking the server about the bucket: a device may read its tenant's
    keys and nothing else, not even the bucket's stream info. Identity owns and creates the bucket."""
    js = NamedConsumerJetStream(connection, timeout=timeout_seconds)
    return KeyValue(
        name=STAFF_GALLERY_BUCKET,
        stream=f"KV_{STAFF_GALLERY_BUCKET}",
        pre=f"$KV.{STAFF_GALLERY_BUCKET}.",
        js=js,
        direct=False,
    )


async def watch_staff_gallery(connection: NatsClient, tenant_id: str, timeout_seconds: float) -> StaffGalleryWatcher:
    """A loaded watcher of the tenant's staff gallery, or DependencyUnavailable."""
    try:
        watcher = StaffGalleryWatcher(staff_gallery_bucket(connection, timeout_seconds), StaffGallery(tenant_id))
        await watcher.load(timeout_seconds)
    except (TimeoutError, nats.errors.Error) as error:
        raise DependencyUnavailable(
            f"cannot load the staff gallery of {tenant_id} from NATS KV bucket {STAFF_GALLERY_BUCKET} (identity "
            f"creates it; the device's user may read {tenant_id}'s keys): {type(error).__name__}: {error}"
        ) from error
    return watcher


async def put_staff_entry(connection: NatsClient, entry: StaffGalleryEntry) -> int:
    """Write (or replace) a staff member's entry; the KV revision. The bucket must exist (identity creates it)."""
    bucket = await connection.jetstream().key_value(STAFF_GALLERY_BUCKET)
    return await bucket.put(staff_gallery_key(entry.tenant_id, entry.staff_id), entry.to_json_bytes())
