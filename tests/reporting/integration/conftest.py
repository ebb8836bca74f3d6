"""Reporting built through its own bootstrap on the session's real NATS and Postgres, one per test module."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client as NatsClient

from devstack.stack import SigningKeys
from services.reporting.bootstrap import Reporting, bootstrap
from services.reporting.config import ReportingSettings
from services.reporting.domain.sites import SiteNotRegistered
from tests.support import new_tenant, register_site


@pytest.fixture(scope="module")
async def reporting(nats_url: str, nats_users, postgres_dsn: str, keys: SigningKeys) -> AsyncIterator[Reporting]:
    settings = ReportingSettings(
        nats_url=nats_url,
        nats_credentials=nats_users["reporting"],
        postgres_dsn=postgres_dsn,
        jwt_public_key=keys.public_pem,
        environment="test",
    )
    async with bootstrap(settings) as service:
        await service.broker.start()
        yield service


SiteTenant = Callable[..., Awaitable[str]]


@pytest.fixture
def site_tenant(reporting: Reporting, nats_connection: NatsClient) -> SiteTenant:
    """A new tenant with sites in the registry (default `store-1` in UTC), once reporting's mirror has them:
    reporting answers 404 for a site the registry does not know."""

    async def make(sites: dict[str, str] | None = None) -> str:
        tenant = new_tenant()
        for site, time_zone in (sites or {"store-1": "UTC"}).items():
            await register_site(nats_connection, tenant, site, time_zone)
            for _ in range(200):
                try:
                    reporting.site_zones.zone_of(tenant, site)
                    break
                except SiteNotRegistered:
                    await asyncio.sleep(0.02)
            reporting.site_zones.zone_of(tenant, site)  # raises if the mirror never caught up
        return tenant

    return make
