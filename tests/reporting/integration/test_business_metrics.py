"""The business gauges from real visits in Postgres and the registry's sites in NATS KV."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from nats.aio.client import Client as NatsClient
from prometheus_client import REGISTRY

from schemas import subjects
from services.reporting.bootstrap import Reporting
from services.reporting.business_metrics import BusinessMetrics
from tests.reporting.integration.conftest import SiteTenant
from tests.support_events import matched, publish_matched

NOW = datetime(2026, 7, 14, 18, tzinfo=UTC)  # 14:00 in New York


def sample(name: str, tenant: str, site: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"tenant": tenant, "site": site, **labels})


async def test_a_sites_local_day_figures_and_occupancy_become_gauges_and_leave_with_the_site(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant({"nyc": "America/New_York", "quiet": "Asia/Tokyo"})
    regular, once = uuid.uuid4(), uuid.uuid4()
    await publish_matched(
        nats_connection,
        [
            matched(tenant, regular, NOW - timedelta(hours=16), site="nyc"),  # 22:00 on the 13th in New York
            matched(tenant, regular, NOW - timedelta(minutes=70), site="nyc", is_new=True),  # a visit, over
            matched(tenant, regular, NOW - timedelta(minutes=15), site="nyc"),  # a returning one, open
            matched(tenant, regular, NOW - timedelta(minutes=5), site="nyc"),
            matched(tenant, once, NOW - timedelta(hours=3), site="nyc", is_new=True),
        ],
    )
    transport = httpx.ASGITransport(app=reporting.app)
    params = {"site_id": "nyc", "from": "2026-07-13", "to": "2026-07-14", "limit": "100"}
    headers = {"authorization": f"Bearer {make_token(tenant, ['analyst'])}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
        for _ in range(200):
            items = (await client.get("/v1/visits", params=params, headers=headers)).json()["items"]
            if len(items) == 4 and max(item["sightings"] for item in items) == 2:
                break
            await asyncio.sleep(0.1)
    metrics = BusinessMetrics(reporting.app.state.visit_pages, reporting.site_zones, timedelta(minutes=30), 100_000)
    await metrics.refresh(NOW)

    assert sample("revisit_reporting_site_visits_today", tenant, "nyc") == 3  # not yesterday's (local) visit
    assert sample("revisit_reporting_site_visitors_today", tenant, "nyc") == 2
    assert sample("revisit_reporting_site_returning_visits_today", tenant, "nyc") == 2
    assert sample("revisit_reporting_site_returning_rate_today", tenant, "nyc") == 2 / 3
    assert sample("revisit_reporting_site_occupancy", tenant, "nyc") == 1
    assert sample("revisit_reporting_site_dwell_today_seconds", tenant, "nyc", statistic="mean") == 200
    assert sample("revisit_reporting_site_dwell_today_seconds", tenant, "nyc", statistic="median") == 0
    dwell = {
        le: sample("revisit_reporting_site_dwell_today_visits", tenant, "nyc", le=le) for le in ("60", "900", "+Inf")
    }
    assert dwell == {"60": 2, "900": 3, "+Inf": 3}
    assert sample("revisit_reporting_site_visits_today", tenant, "quiet") == 0  # registered, no visits: zeros
    assert REGISTRY.get_sample_value("revisit_reporting_business_refreshed_timestamp_seconds") == NOW.timestamp()

    bucket = await nats_connection.jetstream().key_value(subjects.REGISTRY_BUCKET)
    await bucket.delete(subjects.registry_site_key(tenant, "quiet"))
    for _ in range(100):
        if "quiet" not in reporting.site_zones.sites_of(tenant):
            break
        await asyncio.sleep(0.02)
    await metrics.refresh(NOW)
    assert sample("revisit_reporting_site_visits_today", tenant, "quiet") is None
    assert sample("revisit_reporting_site_visits_today", tenant, "nyc") == 3
