"""Ambiguous matches waiting for an operator, in the NATS KV bucket `matcher_ambiguous_pairs`.

A face only just above the threshold of a person starts a provisional person instead (`domain.assignment`);
the pair (provisional person, candidate) is recorded here so that the duplicates route returns it whatever
`min_similarity` it is asked for: its similarity (0.40 to 0.45 by default) is below the route's default
0.5, and a search over vectors alone would hide it. Key `<tenant>.<uuid-a>.<uuid-b>` (the ids in
`person_pair` order), value `AmbiguousPairRecord` JSON. Recording again the same pair changes nothing that
matters. A pair is purged when an operator decides it (merged: one person now; marked different) or when
either person is erased (`forget_persons`, `forget_pair`); the route also skips a pair whose persons have no
customer vector left (relabelled to staff), which stays recorded while a relabel back can revive it.
"""

import uuid
from collections.abc import Collection, Mapping

from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from services.common.kv_mirror import DELETED, state_bucket
from services.common.logging import get_logger
from services.matcher.domain.not_same import PersonPair

BUCKET = "matcher_ambiguous_pairs"
READ_TIMEOUT_SECONDS = 30
log = get_logger(__name__)


class AmbiguousPairRecord(BaseModel):
    similarity: float
    sighting_id: uuid.UUID
    """The face that started the provisional person."""


def pair_key(tenant_id: str, pair: PersonPair) -> str:
    return f"{tenant_id}.{pair[0]}.{pair[1]}"


class AmbiguousPairs:
    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "AmbiguousPairs":
        return cls(await state_bucket(connection, BUCKET, replicas))

    async def record(self, tenant_id: str, pairs: Mapping[PersonPair, AmbiguousPairRecord]) -> None:
        for pair, record in pairs.items():
            await self._bucket.put(pair_key(tenant_id, pair), record.model_dump_json().encode())

    async def forget_pair(self, tenant_id: str, pair: PersonPair) -> None:
        await self._bucket.purge(pair_key(tenant_id, pair))

    async def forget_persons(self, tenant_id: str, persons: Collection[uuid.UUID]) -> int:
        """Purge every pair naming one of `persons` (merged away or erased): a scan of the tenant's pairs, fine for
        these rare steps. Returns how many were purged; purging again finds none."""
        wanted = set(persons)
        doomed = [pair for pair in await self.pairs(tenant_id) if wanted & set(pair)]
        for pair in doomed:
            await self.forget_pair(tenant_id, pair)
        return len(doomed)

    async def pairs(self, tenant_id: str) -> dict[PersonPair, float]:
        """Every recorded pair of the tenant with its similarity (read from the bucket: the route is rare)."""
        watcher = await self._bucket.watch(f"{tenant_id}.>", ignore_deletes=True)
        found: dict[PersonPair, float] = {}
        try:
            while (entry := await watcher.updates(timeout=READ_TIMEOUT_SECONDS)) is not None:  # type: ignore[no-untyped-call]
                if entry.operation in DELETED or not entry.value:
                    continue
                _, first, second = entry.key.split(".")
                try:
                    found[(uuid.UUID(first), uuid.UUID(second))] = AmbiguousPairRecord.model_validate_json(
                        entry.value
                    ).similarity
                except ValidationError as error:  # skipped loudly, as the mirrors do
                    log.error("kv_entry_invalid", bucket=BUCKET, key=entry.key, error=str(error))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return found
