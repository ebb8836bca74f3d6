"""Reporting's copy of the registry's sites (the NATS KV bucket `registry`, identity writes it), mirrored in
memory so a report resolves the sites' time zones without a round trip."""

from nats.aio.client import Client as NatsClient

from schemas import subjects
from services.common.kv_mirror import KvMirror, state_bucket
from services.reporting.domain.sites import SiteZones


async def open_site_zones(connection: NatsClient, replicas: int = 1) -> tuple[SiteZones, KvMirror]:
    """The registered sites, current when this returns, and the mirror that keeps them so (stop it at shutdown)."""
    bucket = await state_bucket(connection, subjects.REGISTRY_BUCKET, replicas)
    zones = SiteZones()
    mirror = KvMirror(bucket, zones.apply)
    await mirror.start()
    return zones, mirror
