"""What the matcher's step of each lifecycle operation changed, so a repeated step announces the same result.

A merge, split or erasure is idempotent in Milvus (relabel and delete by primary key), but its count is not:
a repeat finds nothing left to change. The first attempt therefore records the count (and the time it
announces) in the NATS KV bucket `matcher_operations` (key `<tenant>.<operation id>`) with `create`, before it
changes anything; every later attempt redoes the idempotent work and announces the recorded result, so
the `OperationStepCompleted` is identical (same id, same content) however often or late it is repeated.
Entries expire with the IDENTITY stream: no fact older than that can be redelivered.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from schemas import subjects
from schemas.base import utc_now
from services.common.bus import open_bucket

BUCKET = "matcher_operations"


@dataclass(frozen=True)
class StepResult:
    changed: int
    completed_at: datetime


class StepLedger:
    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "StepLedger":
        config = nats.js.api.KeyValueConfig(
            bucket=BUCKET,
            history=1,
            ttl=float(subjects.IDENTITY_STREAM.max_age_seconds),
            storage=nats.js.api.StorageType.FILE,
            replicas=replicas,
        )
        return cls(await open_bucket(connection, config))

    async def claim(self, tenant_id: str, operation_id: uuid.UUID, changed: int) -> StepResult:
        """Record `changed` as this operation's result unless an earlier attempt did; return the recorded one."""
        key = f"{tenant_id}.{operation_id}"
        proposed = StepResult(changed, utc_now())
        try:
            await self._bucket.create(key, json.dumps(_encode(proposed)).encode())
            return proposed
        except KeyWrongLastSequenceError:
            entry = await self._bucket.get(key)
            return _decode(json.loads(entry.value or b"{}"))


def _encode(result: StepResult) -> dict[str, object]:
    return {"changed": result.changed, "completed_at": result.completed_at.isoformat()}


def _decode(value: dict[str, object]) -> StepResult:
    return StepResult(int(str(value["changed"])), datetime.fromisoformat(str(value["completed_at"])))
