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
import uuid
from collections.abc import Sequence

import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from schemas import FaceMatched, subjects
from services.common.bus import open_bucket

BUCKET = "matcher_decisions"


def decision_key(tenant_id: str, sighting_id: uuid.UUID) -> str:
    return f"{tenant_id}.{sighting_id}"


class MatchDecisions:
    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "MatchDecisions":
        config = nats.js.api.KeyValueConfig(
            bucket=BUCKET,
            history=1,
            ttl=float(subjects.FACES_STREAM.max_age_seconds),
            storage=nats.js.api.StorageType.FILE,
            replicas=replicas,
        )
        return cls(await open_bucket(connection, config))

    async def find(self, tenant_id: str, sightings: Sequence[uuid.UUID]) -> dict[uuid.UUID, FaceMatched]:
        """The recorded FaceMatched of the sightings already decided, by sighting id."""
        found = await asyncio.gather(*(self._get(tenant_id, sighting) for sighting in sightings))
        return {sighting: event for sighting, event in zip(sightings, found, strict=True) if event is not None}

    async def record(self, events: Sequence[FaceMatched]) -> None:
        await asyncio.gather(
            *(self._bucket.put(decision_key(e.tenant_id, e.source_event_id), e.to_json_bytes()) for e in events)
        )

    async def forget(self, tenant_id: str, sightings: Sequence[uuid.UUID]) -> None:
        """Purge the decisions of erased sightings (purging an absent key is harmless)."""
        await asyncio.gather(*(self._bucket.purge(decision_key(tenant_id, sighting)) for sighting in sightings))

    async def _get(self, tenant_id: str, sighting: uuid.UUID) -> FaceMatched | None:
        try:
            entry = await self._bucket.get(decision_key(tenant_id, sighting))
        except KeyNotFoundError:
            return None
        return FaceMatched.model_validate_json(entry.value) if entry.value else None
