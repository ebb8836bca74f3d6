"""Signed checkpoints in their own JetStream stream, outside Postgres.

Why a stream and not the audit table, a KV bucket or S3: whoever holds the audit service's Postgres login
(or a DBA) must not also be able to rewrite the anchors, so they live in another system with other
credentials, which the audit service already needs (NATS). The stream denies message deletion and purge
and allows no rollup, keeps every checkpoint forever (no age or per-subject limit), and checkpoints are
only ever added; a KV bucket would let a newer value (or a purge marker) replace the history. In
production the NATS account of the audit service should also be denied `$JS.API.STREAM.UPDATE` and
`.DELETE` on this stream (docs/operations.md).
"""

import nats.js.api
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from services.audit.domain.checkpoint import Checkpoint

STREAM = "AUDIT_CHECKPOINTS"
SUBJECT_PREFIX = "audit_checkpoints"


def checkpoint_subject(tenant_id: str) -> str:
    return f"{SUBJECT_PREFIX}.{tenant_id}"


def stream_config() -> nats.js.api.StreamConfig:
    return nats.js.api.StreamConfig(
        name=STREAM,
        subjects=[f"{SUBJECT_PREFIX}.*"],
        storage=nats.js.api.StorageType.FILE,
        retention=nats.js.api.RetentionPolicy.LIMITS,
        max_age=0,
        max_msgs_per_subject=-1,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
        duplicate_window=120.0,
    )


class CheckpointStore:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def declare(self) -> None:
        """Create the stream if it does not exist. An existing one is left as it is: its audit user may not
        update or delete it (changing its config is an operator's act), so nobody through the service can
        loosen its deny-delete rules."""
        try:
            await self._js.add_stream(stream_config())
        except BadRequestError:
            await self._js.stream_info(STREAM)

    async def add(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint; two replicas signing the same head within two minutes store it once."""
        await self._js.publish(
            checkpoint_subject(checkpoint.tenant_id),
            checkpoint.to_json(),
            stream=STREAM,
            headers={"Nats-Msg-Id": f"{checkpoint.tenant_id}:{checkpoint.last_seq}:{checkpoint.last_hash[:16]}"},
        )

    async def of_tenant(self, tenant_id: str) -> list[Checkpoint]:
        """Every checkpoint of a tenant, oldest first (one direct get per checkpoint: a checkpoint covers
        many records, so a tenant has few)."""
        try:
            await self._js.stream_info(STREAM)
        except NotFoundError as error:  # a missing stream is not "no checkpoints yet"
            raise CheckpointsUnavailable(f"the checkpoint stream {STREAM} does not exist") from error
        found: list[Checkpoint] = []
        next_seq = 1
        while True:
            try:
                message = await self._js.get_msg(STREAM, seq=next_seq, subject=checkpoint_subject(tenant_id), next=True)
            except NotFoundError:
                return found
            except NatsError as error:
                raise CheckpointsUnavailable(f"cannot read checkpoints of {tenant_id}: {error}") from error
            assert message.data is not None and message.seq is not None
            found.append(Checkpoint.from_json(message.data))
            next_seq = message.seq + 1


class CheckpointsUnavailable(RuntimeError):
    """The checkpoint stream could not be read: verify cannot vouch for the chain."""
