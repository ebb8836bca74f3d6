"""Every FaceMatched the matcher published, so a redelivered face is answered with the identical event.

A face is decided once: a redelivery (an edge replaying its outbox after the 1 hour duplicate window, a
crash after publishing but before the ack) must not re-decide it, because the persons may have changed
meanwhile (a new vector, a merge) and the same event id would then carry a different person or
similarity. The NATS KV bucket `matcher_decisions` (key `<tenant>.<sighting id>`, value the published
FaceMatched JSON) keeps each decision as long as the FACES stream keeps the face. A decision is recorded
after its vector is stored and before it is published; if the matcher dies between the two, the
redelivery is rebuilt from the stored vector instead (the same person, not necessarily the same
similarity). An erasure forgets the decisions of the erased vectors.
"""

import asyncio
import json
import uuid
from collections.abc import Sequence

import nats.errors
import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from schemas import FaceMatched, subjects
from services.common.bus import open_bucket
from services.common.logging import get_logger

BUCKET = "matcher_decisions"
log = get_logger(__name__)
BATCH_GET_SUBJECTS = 1000
"""Subjects per batched direct get (the server caps one request's `multi_last`)."""
BATCH_GET_TIMEOUT_SECONDS = 5.0
RECORD_ACK_TIMEOUT_SECONDS = 5.0
ABSENT = frozenset({"DEL", "PURGE"})


class DirectGetUnavailable(RuntimeError):
    """The bucket was created before direct gets were enabled on it."""


def decision_key(tenant_id: str, sighting_id: uuid.UUID) -> str:
    return f"{tenant_id}.{sighting_id}"


class MatchDecisions:
    def __init__(self, bucket: KeyValue, connection: NatsClient) -> None:
        self._bucket, self._connection = bucket, connection
        self._jetstream = connection.jetstream()
        self._batched = True

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "MatchDecisions":
        config = nats.js.api.KeyValueConfig(
            bucket=BUCKET,
            history=1,
            ttl=float(subjects.FACES_STREAM.max_age_seconds),
            storage=nats.js.api.StorageType.FILE,
            replicas=replicas,
            direct=True,  # batched reads (`find`) are direct gets
        )
        return cls(await open_bucket(connection, config), connection)

    async def find(self, tenant_id: str, sightings: Sequence[uuid.UUID]) -> dict[uuid.UUID, FaceMatched]:
        """The recorded FaceMatched of the sightings already decided, by sighting id: one batched direct get per
        batch of faces (a KV read per face was half a batch's time), or one get per face where the bucket was
        created without direct gets."""
        if self._batched:
            try:
                return await self._find_batched(tenant_id, sightings)
            except DirectGetUnavailable as error:
                log.warning("decisions_batched_get_unavailable", reason=str(error))
                self._batched = False
        found = await asyncio.gather(*(self._get(tenant_id, sighting) for sighting in sightings))
        return {sighting: event for sighting, event in zip(sightings, found, strict=True) if event is not None}

    async def _find_batched(self, tenant_id: str, sightings: Sequence[uuid.UUID]) -> dict[uuid.UUID, FaceMatched]:
        found: dict[uuid.UUID, FaceMatched] = {}
        keys = [f"$KV.{BUCKET}.{decision_key(tenant_id, sighting)}" for sighting in sightings]
        for start in range(0, len(keys), BATCH_GET_SUBJECTS):
            for operation, data in await self._last_messages(keys[start : start + BATCH_GET_SUBJECTS]):
                if operation not in ABSENT and data:
                    event = FaceMatched.model_validate_json(data)
                    found[event.source_event_id] = event
        return found

    async def _last_messages(self, subjects: list[str]) -> list[tuple[str | None, bytes]]:
        """The last message of each subject that has one (JetStream's batched direct get, `multi_last`): replies
        arrive on an inbox and end with a status 204 (end of batch)."""
        inbox = self._connection.new_inbox()
        subscription = await self._connection.subscribe(inbox)
        try:
            request = json.dumps({"multi_last": subjects}).encode()
            await self._connection.publish(f"$JS.API.DIRECT.GET.KV_{BUCKET}", request, reply=inbox)
            messages: list[tuple[str | None, bytes]] = []
            while True:
                message = await subscription.next_msg(timeout=BATCH_GET_TIMEOUT_SECONDS)
                status = (message.headers or {}).get("Status")
                if status == "204" or status == "404":  # end of batch; or none of the subjects has a message
                    return messages
                if status == "503":
                    await self._raise_unavailable()
                if status:
                    raise nats.errors.Error(f"batched get of {BUCKET} answered {status}: {message.headers}")
                messages.append(((message.headers or {}).get("KV-Operation"), message.data))
        finally:
            await subscription.unsubscribe()

    async def _raise_unavailable(self) -> None:
        """No direct get responders: the bucket was made without direct gets (use single gets from now on), or
        NATS is restarting and its stream not loaded yet (an outage: the face is tried again, batched)."""
        info = await self._connection.jetstream().stream_info(f"KV_{BUCKET}")
        if info.config.allow_direct:
            raise nats.errors.NoRespondersError
        raise DirectGetUnavailable(f"bucket {BUCKET} has no direct get responders")

    async def record(self, events: Sequence[FaceMatched]) -> None:
        """Put every decision of a batch at once and wait for all their acknowledgements together: one round trip
        per batch, where awaiting a KV put per face took 30-40 ms of a batch of 256 (the same JetStream writes as
        `KeyValue.put`, whose subject is `$KV.<bucket>.<key>`)."""
        if not events:
            return
        acks = [
            await self._jetstream.publish_async(
                f"$KV.{BUCKET}.{decision_key(event.tenant_id, event.source_event_id)}", event.to_json_bytes()
            )
            for event in events
        ]
        await asyncio.wait_for(asyncio.gather(*acks), RECORD_ACK_TIMEOUT_SECONDS)

    async def forget(self, tenant_id: str, sightings: Sequence[uuid.UUID]) -> None:
        """Purge the decisions of erased sightings (purging an absent key is harmless)."""
        await asyncio.gather(*(self._bucket.purge(decision_key(tenant_id, sighting)) for sighting in sightings))

    async def _get(self, tenant_id: str, sighting: uuid.UUID) -> FaceMatched | None:
        try:
            entry = await self._bucket.get(decision_key(tenant_id, sighting))
        except KeyNotFoundError:
            return None
        return FaceMatched.model_validate_json(entry.value) if entry.value else None
