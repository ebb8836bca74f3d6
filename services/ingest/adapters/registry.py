"""Ingest's copy of the registry: the NATS KV bucket `registry` (identity writes it), mirrored in memory so
every event is checked without a round trip."""

from nats.aio.client import Client as NatsClient

from schemas import subjects
from services.common.kv_mirror import KvMirror, state_bucket
from services.ingest.domain.registry import Registry


async def open_registry(connection: NatsClient, replicas: int = 1) -> tuple[Registry, KvMirror]:
    """The registry, current when this returns, and the mirror that keeps it so (stop it at shutdown). The
    bucket is created here if identity has not started yet: then every event is refused until it registers."""
    bucket = await state_bucket(connection, subjects.REGISTRY_BUCKET, replicas)
    registry = Registry()
    mirror = KvMirror(bucket, registry.apply)
    await mirror.start()
    return registry, mirror
