"""The rollups behind the tenant-wide report, the site comparison and a site's report by local day, on the real
Postgres: after sightings in any order (on a DST day too), merges, erasures, kind changes and a site's zone
becoming known, they say what the visits say (the raw query over the visits is the oracle); and sightings folded
in any order and batches give the visits of all."""

import asyncio
import random
import statistics
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient

from schemas import PersonErased, PersonKind, PersonKindChanged, PersonsMerged
from schemas.ids import new_event_id
from services.common.postgres import tenant_transaction
from services.reporting.adapters.postgres import (
    _REPORT_QUERY,
    Counts,
    ReportRow,
    VisitStore,
    _tenant_params,
    _tenant_query,
)
from services.reporting.bootstrap import Reporting
from services.reporting.domain.visits import Sighting, VisitRules, sessionize_sightings
from tests.support import new_tenant, register_site
from tests.support_events import matched, unidentified

RULES = VisitRules(gap=timedelta(minutes=30), lookback=timedelta(days=90))
ZONES = {"store-1": ZoneInfo("America/New_York"), "store-2": ZoneInfo("Europe/Berlin")}
NOVEMBER = (date(2026, 11, 1), date(2026, 12, 1))


async def raw(store: VisitStore, tenant: str, key: str, first: date, end: date) -> list[dict[str, object]]:
    """The oracle: the report computed from the visits themselves."""
    group = "GROUP BY 1" if key != "0" else ""
    async with tenant_transaction(store._pool, tenant) as connection:
        rows = await connection.fetch(_tenant_query(key, group), *_tenant_params(first, end, ZONES))
    return [dict(row) for row in rows]


async def november_dwells(store: VisitStore, tenant: str) -> list[float]:
    """Every dwell (seconds) of the tenant's visits on November's local dates, shortest first."""
    async with tenant_transaction(store._pool, tenant) as connection:
        rows = await connection.fetch(
            "SELECT extract(epoch FROM v.last_seen_at - v.started_at)::float8 AS dwell"
            " FROM visits v JOIN unnest($1::text[], $2::text[]) AS z(site_id, zone) ON z.site_id = v.site_id"
            " WHERE (v.started_at AT TIME ZONE z.zone)::date >= $3 AND (v.started_at AT TIME ZONE z.zone)::date < $4"
            " ORDER BY 1",
            list(ZONES),
            [zone.key for zone in ZONES.values()],
            *NOVEMBER,
        )
    return [row["dwell"] for row in rows]


def comparable(counts: Counts) -> tuple[object, ...]:
    avg = None if counts.dwell_seconds_avg is None else round(counts.dwell_seconds_avg, 3)
    return (
        counts.visits,
        counts.unique_visitors,
        counts.new_visitors,
        counts.returning_visitors,
        counts.returning_visits,
        avg,
        counts.dwell_distribution,
    )


def comparable_raw(row: dict[str, object]) -> tuple[object, ...]:
    avg = row["dwell_seconds_avg"]
    return (
        row["visits"],
        row["unique_visitors"],
        row["new_visitors"],
        row["returning_visitors"],
        row["returning_visits"],
        None if avg is None else round(float(avg), 3),  # type: ignore[arg-type]
        tuple(row["dwell_distribution"]),  # type: ignore[arg-type]
    )


async def raw_site_report(
    store: VisitStore, tenant: str, site: str, start: datetime, end: datetime
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The oracle of a site's report by local day: the report's own query over the visits."""
    per_day = _REPORT_QUERY.format(
        visit_period="date_trunc('day', started_at, $4)",
        unidentified_period="date_trunc('day', captured_at, $4)",
        group="GROUP BY 1",
    )
    whole = _REPORT_QUERY.format(visit_period="$2::timestamptz", unidentified_period="$2::timestamptz", group="")
    async with tenant_transaction(store._pool, tenant) as connection:
        rows = await connection.fetch(per_day, site, start, end, ZONES[site].key)
        total = await connection.fetchrow(whole, site, start, end)
    assert total is not None
    return [dict(row) for row in rows], dict(total)


def assert_median_to_the_minute(median: float | None, dwells: list[float]) -> None:
    """The median of whole-minute dwells: at most a minute below the exact median, never above it."""
    assert median is not None
    assert statistics.median(dwells) - 60 < median <= statistics.median(dwells)


async def assert_site_report_matches_visits(store: VisitStore, tenant: str, site: str, first: date, last: date) -> None:
    """The site's report over local dates `first`..`last` (included), read from the site-day rollups, against the
    same report from the visits: every figure equal, the median to the minute."""
    zone = ZONES[site]
    start = datetime.combine(first, datetime.min.time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    periods, total = await store.visitor_report(tenant, site, start, end, "day", zone)
    expected, expected_total = await raw_site_report(store, tenant, site, start, end)
    assert [(p.period_start, comparable(p), p.unidentified_sightings) for p in periods] == [
        (r["period_start"], comparable_raw(r), r["unidentified_sightings"]) for r in expected
    ]
    assert all(p.period_start.tzinfo == zone for p in periods)  # the local offset, 25 hours apart on a DST end
    assert (comparable(total), total.unidentified_sightings, total.period_start) == (
        comparable_raw(expected_total),
        expected_total["unidentified_sightings"],
        expected_total["period_start"],
    )
    dwells: dict[date, list[float]] = {}
    for _, visit in await store.list_visits(tenant, site, start, end):
        dwells.setdefault(visit.started_at.astimezone(zone).date(), []).append(
            (visit.last_seen_at - visit.started_at).total_seconds()
        )
    for period in [*periods, total]:
        day_dwells = [d for ds in dwells.values() for d in ds] if period is total else dwells.get(_day(period), [])
        if not day_dwells:
            assert period.dwell_seconds_median is None
            continue
        assert_median_to_the_minute(period.dwell_seconds_median, day_dwells)


def _day(period: ReportRow) -> date:
    return period.period_start.date()


async def assert_rollups_match_visits(store: VisitStore, tenant: str) -> None:
    for site in ZONES:  # the site reports first: they remake a site's rollups in its zone themselves
        await assert_site_report_matches_visits(store, tenant, site, date(2026, 11, 1), date(2026, 11, 30))
        await assert_site_report_matches_visits(store, tenant, site, date(2026, 10, 1), date(2026, 11, 30))
        await assert_site_report_matches_visits(store, tenant, site, date(2026, 10, 31), date(2026, 11, 3))
    days, total = await store.tenant_report(tenant, *NOVEMBER, ZONES)
    expected_days = await raw(store, tenant, "day", *NOVEMBER)
    assert [(d.day, comparable(d)) for d in days] == [(r["key"], comparable_raw(r)) for r in expected_days]
    [expected_total] = await raw(store, tenant, "0", *NOVEMBER)
    assert comparable(total) == comparable_raw(expected_total)
    dwells = await november_dwells(store, tenant)
    assert_median_to_the_minute(total.dwell_seconds_median, dwells)
    sites = await store.site_comparison(tenant, *NOVEMBER, ZONES)
    expected_sites = await raw(store, tenant, "site_id", *NOVEMBER)
    assert [(s.site_id, comparable(s)) for s in sites] == [(r["key"], comparable_raw(r)) for r in expected_sites]
    first_week = (date(2026, 11, 2), date(2026, 11, 9))  # not whole months: totals from who visited each date
    _, week = await store.tenant_report(tenant, *first_week, ZONES)
    [expected_week] = await raw(store, tenant, "0", *first_week)
    assert comparable(week) == comparable_raw(expected_week)


async def test_rollups_follow_sightings_operations_and_a_zone_becoming_known(reporting: Reporting) -> None:
    store, tenant, rng = reporting.store, new_tenant(), random.Random(4)
    persons = [uuid.uuid4() for _ in range(12)]
    events = []
    for person in persons:
        for _ in range(6):
            at = datetime(2026, 11, 2, 12, tzinfo=UTC) + timedelta(
                days=rng.randrange(6), hours=rng.choice([0, 10, 13]), minutes=rng.randrange(50)
            )
            events.append(matched(tenant, person, at, site=rng.choice(list(ZONES))))
    # Nov 1 is New York's 25-hour day (01:00-02:00 twice, 05:00-07:00 UTC); 03:30 UTC is still Oct 31 there
    for minutes in (0, 210, 320, 335, 380, 400, 700):
        events.append(
            matched(tenant, persons[minutes % 5], datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minutes))
        )
    rng.shuffle(events)
    for at in (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 9, 4, tzinfo=UTC)):
        await store.record_unidentified(unidentified(tenant, at))
    # written before any report named the zones: counted in UTC, remade when the first report names them
    for start in range(0, len(events), 7):
        await store.record_sightings(events[start : start + 7], RULES)
    await store.record_sightings(events[:5], RULES)  # redelivered
    await assert_rollups_match_visits(store, tenant)

    merged_away, target, erased, staff = persons[0], persons[1], persons[2], persons[3]
    await store.merge_persons(
        PersonsMerged(tenant_id=tenant, operation_id=new_event_id(), person_id=target, merged_person_ids=[merged_away]),
        RULES,
    )
    await store.erase_person(PersonErased(tenant_id=tenant, operation_id=new_event_id(), person_id=erased), RULES)
    await store.change_person_kind(
        PersonKindChanged(tenant_id=tenant, operation_id=new_event_id(), person_id=staff, kind=PersonKind.STAFF),
        RULES,
    )
    late = [matched(tenant, persons[4], datetime(2026, 11, 3, 3, 30, tzinfo=UTC), site="store-1")]
    await store.record_sightings(late, RULES)
    await assert_rollups_match_visits(store, tenant)


@st.composite
def sighting_batches(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """(person, minute) sightings of 3 persons, and the batches they arrive in: shuffled, some twice."""
    sightings = draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 600)), min_size=1, max_size=25))
    indexes = list(range(len(sightings)))
    order = draw(st.permutations(indexes + draw(st.lists(st.sampled_from(indexes), max_size=5))))
    size = draw(st.integers(1, 8))
    return sightings, [order[i : i + size] for i in range(0, len(order), size)]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=sighting_batches())
async def test_any_order_through_the_store_gives_the_visits_of_all_sightings(
    reporting: Reporting, case: tuple[list[tuple[int, int]], list[list[int]]]
) -> None:
    store, tenant = reporting.store, new_tenant()
    persons = [uuid.uuid4() for _ in range(3)]
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    sightings, batches = case
    events = [matched(tenant, persons[p], start + timedelta(minutes=m)) for p, m in sightings]
    for batch in batches:
        await store.record_sightings([events[i] for i in batch], RULES)
    stored = await store.list_visits(tenant, "store-1", start - timedelta(days=1), start + timedelta(days=2))
    for p, person in enumerate(persons):
        expected = sessionize_sightings(
            [Sighting(e.event_id, e.captured_at) for e, (q, _) in zip(events, sightings, strict=True) if q == p], RULES
        )
        assert [visit for owner, visit in stored if owner == person] == expected
    await assert_rollups_match_visits(store, tenant)


async def test_tenant_report_and_site_comparison_routes(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    store, tenant = reporting.store, new_tenant()
    for site, zone in ZONES.items():
        await register_site(nats_connection, tenant, site, zone.key)
    for _ in range(100):  # the service's mirror of the registry follows the bucket
        if len(reporting.app.state.site_zones.sites_of(tenant)) == len(ZONES):
            break
        await asyncio.sleep(0.1)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    # 03:30 UTC on Nov 3: Nov 2 in New York, Nov 3 in Berlin; alice at both sites, bob in Berlin twice
    at = datetime(2026, 11, 3, 3, 30, tzinfo=UTC)
    await store.record_sightings(
        [
            matched(tenant, alice, at, site="store-1"),
            matched(tenant, alice, at + timedelta(minutes=20), site="store-1"),
            matched(tenant, alice, at, site="store-2"),
            matched(tenant, bob, at, site="store-2"),
            matched(tenant, bob, at + timedelta(days=1), site="store-2"),
        ],
        RULES,
    )
    transport = httpx.ASGITransport(app=reporting.app)
    headers = {"authorization": f"Bearer {make_token(tenant, ['analyst'])}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting", headers=headers) as client:
        body = (await client.get("/v1/reports/tenant", params={"from": "2026-11-01", "to": "2026-11-30"})).json()
        sites = (await client.get("/v1/reports/sites", params={"from": "2026-11-01", "to": "2026-11-30"})).json()
        backwards = await client.get("/v1/reports/sites", params={"from": "2026-11-30", "to": "2026-11-01"})
    days = {
        p["day"]: (p["visits"], p["unique_visitors"], p["new_visitors"], p["returning_visitors"])
        for p in body["periods"]
    }
    assert days == {"2026-11-02": (1, 1, 1, 0), "2026-11-03": (2, 2, 2, 0), "2026-11-04": (1, 1, 0, 1)}
    totals = body["totals"]
    assert (totals["visits"], totals["unique_visitors"], totals["returning_visitors"]) == (4, 2, 1)
    assert totals["visits_per_visitor"] == 2 and totals["returning_rate"] == 0.5
    assert [(s["site_id"], s["visits"], s["unique_visitors"]) for s in sites["sites"]] == [
        ("store-1", 1, 1),
        ("store-2", 3, 2),
    ]
    assert sites["sites"][0]["dwell_seconds_avg"] == 1200 and sites["sites"][0]["dwell_distribution"]["15m_30m"] == 1
    assert backwards.status_code == 422
