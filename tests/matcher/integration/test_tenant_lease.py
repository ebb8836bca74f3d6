"""The tenant lease on the real NATS KV: renewed past its TTL, exclusive, fenced, and handed over when its
holder stops renewing (as a killed replica does)."""

import asyncio
import uuid

import pytest
from nats.aio.client import Client as NatsClient

from services.matcher.adapters.tenant_lease import LeaseLost, LeaseTimeout, TenantLease

TTL = 2.0


@pytest.fixture
async def two_replicas(nats_connection: NatsClient) -> tuple[TenantLease, TenantLease]:
    """Two processes' worth of leases (each its own holder id) on one bucket."""
    return await TenantLease.open(nats_connection, TTL), await TenantLease.open(nats_connection, TTL)


async def test_a_held_lease_is_renewed_past_its_ttl_and_excludes_another_replica(
    two_replicas: tuple[TenantLease, TenantLease],
) -> None:
    first, second = two_replicas
    tenant = f"t{uuid.uuid4().hex[:8]}"
    async with first.hold(tenant, "faces_m") as held:
        await asyncio.sleep(3 * TTL)  # three TTLs: only renewal keeps it
        with pytest.raises(LeaseTimeout):
            async with second.hold(tenant, "faces_m", wait_seconds=TTL / 2):
                pass
        await held.fence()  # still this holder's
    async with second.hold(tenant, "faces_m", wait_seconds=TTL / 2):  # released: taken at once
        pass


async def test_a_holder_that_stops_renewing_is_fenced_and_its_tenant_handed_over(
    two_replicas: tuple[TenantLease, TenantLease],
) -> None:
    first, second = two_replicas
    tenant = f"t{uuid.uuid4().hex[:8]}"
    async with first.hold(tenant, "faces_m") as stalled:
        stalled._renewal.cancel()  # a process stalled (or killed): no more renewals
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with second.hold(tenant, "faces_m", wait_seconds=10 * TTL) as taken:
            waited = loop.time() - started
            with pytest.raises(LeaseLost):
                await stalled.fence()  # the stalled holder may write nothing more
            await taken.fence()
    assert waited < 10 * TTL
    async with first.hold(tenant, "faces_m", wait_seconds=TTL / 2):  # the new holder released it
        pass
