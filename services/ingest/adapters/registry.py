"""Ingest's copy of the registry: the NATS KV bucket `registry` (identity writes it), mirrored in memory so
every event is checked without a round trip."""

import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.errors import BucketNotFoundError

from schemas import subjects
from services.common.kv_mirror import KvMirror
from services.ingest.domain.registry import Registry


async def open_registry(connection: NatsClient) -> tuple[Registry, KvMirror]:
    """The registry, current when this returns, and the mirror that keeps it so (stop it at shutdown). The
    bucket is created here if identity has not started yet: then every event is refused until it registers."""
    js = connection.jetstream()
    try:
        bucket = await js.key_value(subjects.REGISTRY_BUCKET)
    except BucketNotFoundError:
        config = nats.js.api.KeyValueConfig(
            bucket=subjects.REGISTRY_BUCKET, history=1, storage=nats.js.api.StorageType.FILE
        )
        bucket = await js.create_key_value(config=config)
    registry = Registry()
    mirror = KvMirror(bucket, registry.apply)
    await mirror.start()
    return registry, mirror
