"""Ingest's retention job on the real NATS and S3 server, with a fake "today"."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client as NatsClient

from devstack.stack import SigningKeys
from services.common.retention import RunLease
from services.ingest.__main__ import retention
from services.ingest.adapters.s3 import CropStore
from services.ingest.config import IngestSettings
from tests.support import known_tenant, retention_audits

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)  # the job's "today": keeps crops of 2030-05-16 on (30 days)


@pytest.fixture(scope="module")
def settings(nats_url: str, s3_endpoint: str, s3_credentials: tuple[str, str], keys: SigningKeys) -> IngestSettings:
    return IngestSettings(
        nats_url=nats_url,
        s3_endpoint_url=s3_endpoint,
        s3_access_key=s3_credentials[0],
        s3_secret_key=s3_credentials[1],
        jwt_public_key=keys.public_pem,
        environment="test",
    )


@pytest.fixture
async def crops(settings: IngestSettings) -> AsyncIterator[CropStore]:
    store = CropStore(
        settings.s3_endpoint_url, settings.s3_bucket, settings.s3_region, settings.s3_access_key, settings.s3_secret_key
    )
    async with store:
        await store.ensure_bucket()
        yield store


async def put_crops(crops: CropStore, tenant: str, days: list[str]) -> None:
    for day in days:
        await crops.put_crop(f"{tenant}/store-1/{day}/e-{day.replace('/', '')}.jpg", b"\xff\xd8jpeg")


async def test_old_crops_go_recent_stay_per_tenant_policy_once_and_audited(
    settings: IngestSettings, crops: CropStore, nats_connection: NatsClient
) -> None:
    default_tenant = await known_tenant(nats_connection)
    strict = {"crops_days": 5, "vectors_unseen_days": 365, "sightings_days": 400, "visits_days": 400}
    strict_tenant = await known_tenant(nats_connection, strict)
    await put_crops(crops, default_tenant, ["2029/12/31", "2030/05/01", "2030/05/15", "2030/05/16", "2030/06/01"])
    await crops.put_crop(f"{default_tenant}/store-1/misc/not-a-date.jpg", b"\xff\xd8")  # never dated, never deleted
    await put_crops(crops, strict_tenant, ["2030/06/01", "2030/06/12"])

    first = await retention(settings, NOW)

    assert first.ran
    assert first.deleted[default_tenant] == {"crops": 3}
    assert first.deleted[strict_tenant] == {"crops": 1}
    assert sorted(await crops.keys_under(f"{default_tenant}/")) == [
        f"{default_tenant}/store-1/2030/05/16/e-20300516.jpg",
        f"{default_tenant}/store-1/2030/06/01/e-20300601.jpg",
        f"{default_tenant}/store-1/misc/not-a-date.jpg",
    ]
    assert await crops.keys_under(f"{strict_tenant}/") == [f"{strict_tenant}/store-1/2030/06/12/e-20300612.jpg"]

    second = await retention(settings, NOW)

    assert second.deleted[default_tenant] == {"crops": 0} and second.deleted[strict_tenant] == {"crops": 0}
    audits = await retention_audits(nats_connection, "ingest", strict_tenant, 2)
    assert [a["deleted"] for a in audits] == [{"crops": 1}, {"crops": 0}]
    assert audits[0]["policy"] == strict and audits[0]["as_of"] == NOW.isoformat()


async def test_one_runner_at_a_time(settings: IngestSettings, crops: CropStore, nats_connection: NatsClient) -> None:
    tenant = await known_tenant(nats_connection)
    await put_crops(crops, tenant, ["2030/01/02", "2030/01/03"])
    lease = await RunLease.open(nats_connection)
    async with lease.hold("ingest") as held:  # another runner is at work
        assert held
        blocked = await retention(settings, NOW)
    assert not blocked.ran and len(await crops.keys_under(f"{tenant}/")) == 2

    runs = await asyncio.gather(retention(settings, NOW), retention(settings, NOW))

    assert any(run.ran for run in runs)
    assert sum(run.deleted.get(tenant, {}).get("crops", 0) for run in runs) == 2
    assert await crops.keys_under(f"{tenant}/") == []
