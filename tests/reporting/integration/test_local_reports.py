"""Reports in a site's local time and dwell, at the store on the real Postgres: a New York store's evening
visitor lands on its local day, DST change days have 23 and 25 hours, and a visit's dwell is its length."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.reporting.adapters.postgres import VisitStore
from services.reporting.bootstrap import Reporting
from services.reporting.domain.reports import DWELL_BUCKETS
from services.reporting.domain.visits import VisitRules
from tests.support import new_tenant
from tests.support_events import matched

NEW_YORK = ZoneInfo("America/New_York")
RULES = VisitRules(gap=timedelta(minutes=30), lookback=timedelta(days=90))


async def record(store: VisitStore, tenant: str, person: uuid.UUID, *moments: datetime) -> None:
    for at in moments:
        await store.record_sighting(matched(tenant, person, at), RULES)


def local_midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=NEW_YORK).astimezone(UTC)


async def test_a_new_york_visitor_at_0330_utc_counts_on_the_previous_local_day(reporting: Reporting) -> None:
    tenant, store = new_tenant(), reporting.store
    await record(store, tenant, uuid.uuid4(), datetime(2026, 11, 3, 3, 30, tzinfo=UTC))  # 22:30 on Nov 2 in NY
    start, end = local_midnight(2026, 11, 2), local_midnight(2026, 11, 4)
    rows, totals = await store.visitor_report(tenant, "store-1", start, end, "day", NEW_YORK)
    assert [(row.period_start.isoformat(), row.visits) for row in rows] == [("2026-11-02T00:00:00-05:00", 1)]
    assert totals.visits == 1 and totals.period_start == start
    utc_rows, _ = await store.visitor_report(tenant, "store-1", start, end, "day", ZoneInfo("UTC"))
    assert [row.period_start.isoformat() for row in utc_rows] == ["2026-11-03T00:00:00+00:00"]


async def hourly_buckets_of_local_day(store: VisitStore, year: int, month: int, day: int) -> list[str]:
    """One visitor at the start of every UTC hour of the local day; the local hours the report shows."""
    tenant = new_tenant()
    start, end = local_midnight(year, month, day), local_midnight(year, month, day + 1)
    moment = start
    while moment < end:
        await record(store, tenant, uuid.uuid4(), moment)
        moment += timedelta(hours=1)
    rows, totals = await store.visitor_report(tenant, "store-1", start, end, "hour", NEW_YORK)
    assert totals.visits == len(rows)
    return [row.period_start.isoformat() for row in rows]


async def test_dst_start_day_has_23_hourly_buckets(reporting: Reporting) -> None:
    hours = await hourly_buckets_of_local_day(reporting.store, 2026, 3, 8)
    assert len(hours) == 23
    assert hours[:3] == ["2026-03-08T00:00:00-05:00", "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"]
    assert hours[-1] == "2026-03-08T23:00:00-04:00"


async def test_dst_end_day_has_25_hourly_buckets(reporting: Reporting) -> None:
    hours = await hourly_buckets_of_local_day(reporting.store, 2026, 11, 1)
    assert len(hours) == 25
    assert hours[1:4] == ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"]
    assert hours[-1] == "2026-11-01T23:00:00-05:00"


async def test_dwell_of_a_visit_with_sightings_20_minutes_apart_is_1200_s(reporting: Reporting) -> None:
    tenant, store = new_tenant(), reporting.store
    arrived = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    await record(store, tenant, uuid.uuid4(), arrived, arrived + timedelta(minutes=20))
    await record(store, tenant, uuid.uuid4(), arrived + timedelta(hours=1))  # one sighting: dwells 0 s
    start, end = local_midnight(2026, 11, 2), local_midnight(2026, 11, 3)
    _, totals = await store.visitor_report(tenant, "store-1", start, end, "day", NEW_YORK)
    assert totals.visits == 2
    assert totals.dwell_seconds_avg == 600 and totals.dwell_seconds_median == 600
    distribution = dict(zip((b.name for b in DWELL_BUCKETS), totals.dwell_distribution, strict=True))
    assert distribution["15m_30m"] == 1 and distribution["under_1m"] == 1 and sum(distribution.values()) == 2
    hourly, _ = await store.visitor_report(tenant, "store-1", start, end, "hour", NEW_YORK)
    assert [(row.dwell_seconds_avg, row.dwell_seconds_median) for row in hourly] == [(1200, 1200), (0, 0)]
