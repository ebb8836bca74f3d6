"""Pairs of persons an operator marked different, in the NATS KV bucket `matcher_not_same`.

Key `<tenant>.<uuid-a>.<uuid-b>` (the two ids in `person_pair` order), value `different`: a pair is a fact, and
putting it again changes nothing. The matcher owns the bucket and creates it at start; each replica keeps
a mirror of it in memory for the matching rule (`domain.not_same`) and the duplicate suggestions.
"""

import uuid
from collections import defaultdict

import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from services.common.bus import open_bucket
from services.common.kv_mirror import KvMirror
from services.matcher.domain.not_same import PersonPair, person_pair

BUCKET = "matcher_not_same"


def not_same_key(tenant_id: str, pair: PersonPair) -> str:
    return f"{tenant_id}.{pair[0]}.{pair[1]}"


class NotSamePairs:
    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket
        self._pairs: dict[str, set[PersonPair]] = defaultdict(set)
        self._mirror = KvMirror(bucket, self.apply)

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "NotSamePairs":
        config = nats.js.api.KeyValueConfig(
            bucket=BUCKET, history=1, storage=nats.js.api.StorageType.FILE, replicas=replicas
        )
        pairs = cls(await open_bucket(connection, config))
        await pairs._mirror.start()
        return pairs

    async def close(self) -> None:
        await self._mirror.stop()

    async def mark(self, tenant_id: str, a: uuid.UUID, b: uuid.UUID) -> None:
        """Record the pair (idempotent); this replica applies it at once, the others through their watchers."""
        pair = person_pair(a, b)
        await self._bucket.put(not_same_key(tenant_id, pair), b"different")
        self._pairs[tenant_id].add(pair)

    def pairs(self, tenant_id: str) -> frozenset[PersonPair]:
        return frozenset(self._pairs.get(tenant_id, ()))

    def apply(self, key: str, value: bytes | None) -> None:
        tenant_id, first, second = key.split(".")
        pair = (uuid.UUID(first), uuid.UUID(second))
        if value is None:
            self._pairs[tenant_id].discard(pair)
        else:
            self._pairs[tenant_id].add(pair)
