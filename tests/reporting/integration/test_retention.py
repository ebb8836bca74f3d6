"""Reporting's retention job on the real NATS and Postgres, with a fake "today": sightings go by whole visits,
the visits that lost theirs are archived (kept for reports until visits_days, never recomputed)."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient

from devstack.stack import SigningKeys
from schemas import PersonKind
from services.common.retention import RunLease
from services.reporting.__main__ import retention
from services.reporting.bootstrap import ReportingRetention, bootstrap_retention
from services.reporting.config import ReportingSettings
from tests.support import known_tenant, retention_audits
from tests.support_events import matched, unidentified

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture(scope="module")
def settings(nats_url: str, postgres_dsn: str, keys: SigningKeys) -> ReportingSettings:
    return ReportingSettings(
        nats_url=nats_url, postgres_dsn=postgres_dsn, jwt_public_key=keys.public_pem, environment="test"
    )


@pytest.fixture
async def job(settings: ReportingSettings) -> AsyncIterator[ReportingRetention]:
    async with bootstrap_retention(settings) as built:
        yield built


async def sightings_at(job: ReportingRetention, tenant: str, person: uuid.UUID, *times: datetime, **kw: object) -> None:
    for at in times:
        await job.store.record_sighting(matched(tenant, person, at, **kw), job.rules)  # type: ignore[arg-type]


async def visits(job: ReportingRetention, tenant: str) -> list[tuple[uuid.UUID, datetime]]:
    return [(person, visit.started_at) for person, visit in await job.store.list_visits(tenant, "store-1", *EVER)]


async def assert_rollups_count_the_visits(job: ReportingRetention, tenant: str) -> None:
    _, totals = await job.store.tenant_report(tenant, date(2000, 1, 1), date(2031, 1, 1), {"store-1": ZoneInfo("UTC")})
    remaining = await visits(job, tenant)
    assert (totals.visits, totals.unique_visitors) == (len(remaining), len({person for person, _ in remaining}))


async def rows_before(postgres_dsn: str, table: str, column: str, tenant: str, end: datetime) -> int:
    """The tenant's rows of `table` before `end`, read as the database's superuser (row security aside)."""
    connection = await asyncpg.connect(postgres_dsn)
    try:
        query = f"SELECT count(*) FROM reporting.{table} WHERE tenant_id = $1 AND {column} < $2"
        return int(await connection.fetchval(query, tenant, end))
    finally:
        await connection.close()


async def test_default_policy_deletes_old_sightings_and_visits_once_and_audits(
    settings: ReportingSettings, job: ReportingRetention, nats_connection: NatsClient, postgres_dsn: str
) -> None:
    tenant = await known_tenant(nats_connection)  # 400 days for both
    customer, straddling, staff = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await sightings_at(job, tenant, customer, ago(500), ago(500) + timedelta(minutes=10), ago(100))
    cutoff = ago(400)
    await sightings_at(job, tenant, straddling, cutoff - timedelta(minutes=5), cutoff + timedelta(minutes=5))
    await sightings_at(job, tenant, staff, ago(450), kind=PersonKind.STAFF)
    for at in (ago(401), ago(10)):
        await job.store.record_unidentified(unidentified(tenant, at))

    first = await retention(settings, NOW)
    second = await retention(settings, NOW)

    # the visit going on at the cutoff keeps both its sightings; the staff sighting made no visit
    assert first.deleted[tenant] == {"sightings": 3, "unidentified_sightings": 1, "visits_archived": 1, "visits": 1}
    assert second.deleted[tenant] == {"sightings": 0, "unidentified_sightings": 0, "visits_archived": 0, "visits": 0}
    assert sorted(await visits(job, tenant)) == sorted(
        [(customer, ago(100)), (straddling, cutoff - timedelta(minutes=5))]
    )
    audits = await retention_audits(nats_connection, "reporting", tenant, 2)
    assert [a["deleted"]["sightings"] for a in audits] == [3, 0]
    # the months before the cutoff went as whole partitions, except a month another tenant of this shared test
    # database still keeps under its own policy (other modules' tenants live here too): none of this tenant's rows
    # is left in any of them
    for table, column in (("sightings", "captured_at"), ("visits", "started_at")):
        kept = await job.store.partitions_ending_by(table, cutoff)
        if kept:
            assert await rows_before(postgres_dsn, table, column, tenant, max(kept)) == 0
    # and the rollups lost what went with them: the tenant-wide report counts the visits that are left
    await assert_rollups_count_the_visits(job, tenant)


async def test_archived_visits_outlive_their_sightings_and_survive_a_recompute(
    settings: ReportingSettings, job: ReportingRetention, nats_connection: NatsClient
) -> None:
    policy = {"crops_days": 30, "vectors_unseen_days": 365, "sightings_days": 100, "visits_days": 600}
    tenant = await known_tenant(nats_connection, policy)
    person = uuid.uuid4()
    await sightings_at(job, tenant, person, ago(700), ago(500), ago(200), ago(10))

    first = await retention(settings, NOW)
    await sightings_at(job, tenant, person, ago(9))  # recomputes the person's visits from its sightings

    assert first.deleted[tenant] == {"sightings": 3, "unidentified_sightings": 0, "visits_archived": 3, "visits": 1}
    assert sorted(started for _, started in await visits(job, tenant)) == [ago(500), ago(200), ago(10), ago(9)]
    await assert_rollups_count_the_visits(job, tenant)


async def test_one_runner_at_a_time(settings: ReportingSettings, nats_connection: NatsClient) -> None:
    lease = await RunLease.open(nats_connection)
    async with lease.hold("reporting") as held:
        assert held
        assert not (await retention(settings, NOW)).ran
    assert (await retention(settings, NOW)).ran
