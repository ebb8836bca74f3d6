"""The rollups of migrations 008 and 009, kept by the transactions that change visits, and read by the reports.

Four levels: the tenant per local date, the tenant per local month, each site per local month, each site per
local date. Each has who visited per key (`*_persons`), counters per key and dwell per whole minute; a batch of
visit changes is applied to a level in one statement. Which zone a site's rollups are in is `site_zones.zone`: a
site the reports have not named yet is counted in UTC and remade when a report names its zone
(`reconcile_zones`). Writers hold a shared lock per site while they use its zone, the remake an exclusive one."""

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg

from services.common.postgres import Connection
from services.reporting.domain.reports import DWELL_BUCKETS, Contribution, contribution, net_contributions
from services.reporting.domain.visits import PersonVisit

K = TypeVar("K")


@dataclass(frozen=True)
class Level:
    persons: str
    counters: str
    dwell: str
    keys: tuple[str, ...]


LEVELS = (
    Level("tenant_day_persons", "tenant_days", "tenant_day_dwell", ("day",)),
    Level("tenant_month_persons", "tenant_months", "tenant_month_dwell", ("month",)),
    Level("site_month_persons", "site_months", "site_month_dwell", ("site_id", "month")),
    Level("site_day_persons", "site_days", "site_day_dwell", ("site_id", "day")),
)


FROM_ARRAYS = """
    SELECT * FROM unnest($2::text[], $3::date[], $4::date[], $5::uuid[], $6::int[], $7::bool[], $8::float8[],
                         $9::smallint[])
        AS i(site_id, day, month, person_id, sign, is_returning, dwell, minute)
"""
"""Contributions given as arrays, one per column."""

FROM_SITE_IN_TWO_ZONES = """
    SELECT v.site_id, d.day, date_trunc('month', d.day)::date AS month, v.person_id, z.sign, v.is_returning,
           extract(epoch FROM v.last_seen_at - v.started_at)::float8 AS dwell,
           least(floor(extract(epoch FROM v.last_seen_at - v.started_at) / 60), 240)::smallint AS minute
    FROM visits v CROSS JOIN (VALUES (-1, $3::text), (1, $4::text)) AS z(sign, zone)
    CROSS JOIN LATERAL (SELECT (v.started_at AT TIME ZONE z.zone)::date AS day) AS d
    WHERE v.site_id = $2
"""
"""Every visit of site `$2` taken out in zone `$3` and put back in zone `$4` (a visit whose date is the same in
both cancels out)."""


def _level_ctes(number: int, level: Level) -> str:
    """One level's part of the apply statement, its CTEs named `l<number>_*`: who visited (each person's row
    before the change is its row after minus the change, so nothing is read twice and a concurrent writer's
    committed change is never lost), the counters and the dwell minutes, each upserted in key order."""
    keys = ", ".join(level.keys)
    of_m = ", ".join(f"m.{key}" for key in level.keys)
    name = f"l{number}"
    return f"""
    {name}_persons AS (
        SELECT {keys}, person_id, sum(sign)::int AS visits,
               coalesce(sum(sign) FILTER (WHERE NOT is_returning), 0)::int AS new_visits,
               coalesce(sum(sign) FILTER (WHERE is_returning), 0)::int AS returning_visits
        FROM input GROUP BY {keys}, person_id
    ), {name}_after AS (
        INSERT INTO {level.persons} AS m (tenant_id, {keys}, person_id, visits, new_visits, returning_visits)
        SELECT $1, {keys}, person_id, visits, new_visits, returning_visits FROM {name}_persons
        ORDER BY {keys}, person_id
        ON CONFLICT (tenant_id, {keys}, person_id) DO UPDATE SET visits = m.visits + EXCLUDED.visits,
            new_visits = m.new_visits + EXCLUDED.new_visits,
            returning_visits = m.returning_visits + EXCLUDED.returning_visits
        RETURNING {of_m}, m.person_id, m.visits, m.new_visits, m.returning_visits
    ), {name}_visitors AS (
        SELECT {keys},
               sum((a.visits > 0)::int - (a.visits - p.visits > 0)::int)::int AS unique_visitors,
               sum((a.new_visits > 0)::int - (a.new_visits - p.new_visits > 0)::int)::int AS new_visitors,
               sum((a.returning_visits > 0)::int - (a.returning_visits - p.returning_visits > 0)::int)::int
                   AS returning_visitors
        FROM {name}_after a JOIN {name}_persons p USING ({keys}, person_id) GROUP BY {keys}
    ), {name}_totals AS (
        SELECT {keys}, sum(sign)::int AS visits,
               coalesce(sum(sign) FILTER (WHERE is_returning), 0)::int AS returning_visits,
               sum(sign * dwell) AS dwell_seconds
        FROM input GROUP BY {keys}
    ), {name}_dwell AS (
        INSERT INTO {level.dwell} AS d (tenant_id, {keys}, minute, visits)
        SELECT $1, {keys}, minute, sum(sign) FROM input GROUP BY {keys}, minute ORDER BY {keys}, minute
        ON CONFLICT (tenant_id, {keys}, minute) DO UPDATE SET visits = d.visits + EXCLUDED.visits
    ), {name}_counters AS (
        INSERT INTO {level.counters} AS c (tenant_id, {keys}, visits, unique_visitors, new_visitors,
                                           returning_visitors, returning_visits, dwell_seconds)
        SELECT $1, {keys}, t.visits, v.unique_visitors, v.new_visitors, v.returning_visitors, t.returning_visits,
               t.dwell_seconds
        FROM {name}_totals t JOIN {name}_visitors v USING ({keys}) ORDER BY {keys}
        ON CONFLICT (tenant_id, {keys}) DO UPDATE SET visits = c.visits + EXCLUDED.visits,
            unique_visitors = c.unique_visitors + EXCLUDED.unique_visitors,
            new_visitors = c.new_visitors + EXCLUDED.new_visitors,
            returning_visitors = c.returning_visitors + EXCLUDED.returning_visitors,
            returning_visits = c.returning_visits + EXCLUDED.returning_visits,
            dwell_seconds = c.dwell_seconds + EXCLUDED.dwell_seconds
    )"""


def _apply_sql(levels: Sequence[Level], source: str) -> str:
    """Every level changed by one statement (one round trip whatever the number of levels): the levels' tables
    are disjoint, so their data-modifying CTEs do not see or touch each other's rows."""
    parts = ",".join(_level_ctes(number, level) for number, level in enumerate(levels))
    return f"WITH input AS MATERIALIZED ({source}),{parts}\n    SELECT 1"


APPLY = _apply_sql(LEVELS, FROM_ARRAYS)
MOVE_SITE = _apply_sql(LEVELS, FROM_SITE_IN_TWO_ZONES)


async def apply_contributions(connection: Connection, tenant_id: str, contributions: Sequence[Contribution]) -> None:
    """Add the contributions (signed) to every level, in one statement."""
    if not contributions:
        return
    await connection.execute(
        APPLY,
        tenant_id,
        [c.site_id for c in contributions],
        [c.day for c in contributions],
        [c.month for c in contributions],
        [c.person_id for c in contributions],
        [c.sign for c in contributions],
        [c.is_returning for c in contributions],
        [c.dwell_seconds for c in contributions],
        [c.minute for c in contributions],
    )


async def lock_site_zones(connection: Connection, tenant_id: str, sites: Iterable[str]) -> dict[str, ZoneInfo]:
    """Hold the sites' zones (shared) until commit and return them; a site without one is recorded in UTC."""
    ordered = sorted(set(sites))
    if not ordered:
        return {}
    await connection.execute(
        "SELECT count(pg_advisory_xact_lock_shared(hashtext(key)))"
        " FROM (SELECT key FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n) ORDER BY n) AS ordered",
        zone_lock_keys(tenant_id, ordered),
    )
    return await locked_site_zones(connection, tenant_id, ordered)


def zone_lock_keys(tenant_id: str, sites: Iterable[str]) -> list[str]:
    """The advisory lock keys of the sites' zones, in the order every writer takes them (shared)."""
    return [_zone_lock(tenant_id, site) for site in sorted(set(sites))]


async def locked_site_zones(connection: Connection, tenant_id: str, sites: Sequence[str]) -> dict[str, ZoneInfo]:
    """The zones of sites whose shared locks this transaction holds, in one round trip; a site without one is
    recorded in UTC. A site another writer is recording at the same moment is not visible to this statement
    yet: that writer records UTC too (only `reconcile_zones`, which the shared lock keeps out, records others)."""
    rows = await connection.fetch(
        "WITH recorded AS (INSERT INTO site_zones (tenant_id, site_id, zone)"
        "   SELECT $1, site, 'UTC' FROM unnest($2::text[]) AS site ON CONFLICT DO NOTHING RETURNING site_id, zone)"
        " SELECT site_id, zone FROM site_zones WHERE site_id = ANY($2::text[])"
        " UNION ALL SELECT site_id, zone FROM recorded",
        tenant_id,
        list(sites),
    )
    zones = dict.fromkeys(sites, UTC_ZONE)
    zones.update({row["site_id"]: ZoneInfo(row["zone"]) for row in rows})
    return zones


UTC_ZONE = ZoneInfo("UTC")


def _zone_lock(tenant_id: str, site_id: str) -> str:
    return f"zone:{tenant_id}/{site_id}"


async def apply_visit_changes(
    connection: Connection,
    tenant_id: str,
    before: Iterable[PersonVisit],
    after: Iterable[PersonVisit],
    zones: Mapping[str, ZoneInfo] | None = None,
) -> None:
    """Move the rollups from the visits `before` to the visits `after` (under the sites' zone locks: taken here,
    or already held by a caller that passes the `zones` it read under them)."""
    before, after = list(before), list(after)
    if zones is None:
        zones = await lock_site_zones(connection, tenant_id, {p.site_id for p in (*before, *after)})
    await apply_contributions(
        connection,
        tenant_id,
        net_contributions(
            (_contribution(p, zones[p.site_id]) for p in before), (_contribution(p, zones[p.site_id]) for p in after)
        ),
    )


def _contribution(placed: PersonVisit, zone: ZoneInfo) -> Contribution:
    v = placed.visit
    return contribution(placed.site_id, placed.person_id, v.started_at, v.last_seen_at, v.is_returning, zone)


async def reconcile_zones(connection: Connection, tenant_id: str, zones: Mapping[str, ZoneInfo]) -> list[str]:
    """Make every site of `zones` counted in its zone: a site recorded in another zone has its rollups moved (its
    visits' contributions taken out in the old zone, put back in the new) under its exclusive lock; a site not
    recorded yet is recorded. The sites remade."""
    rows = await connection.fetch("SELECT site_id, zone FROM site_zones WHERE site_id = ANY($1::text[])", list(zones))
    recorded = {row["site_id"]: row["zone"] for row in rows}
    remade = []
    for site_id, zone in sorted(zones.items()):
        if recorded.get(site_id) == zone.key:
            continue
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _zone_lock(tenant_id, site_id))
        old = await connection.fetchval("SELECT zone FROM site_zones WHERE site_id = $1", site_id)
        if old is not None and old != zone.key:
            await _move_site(connection, tenant_id, site_id, ZoneInfo(old), zone)
            remade.append(site_id)
        await connection.execute(
            "INSERT INTO site_zones (tenant_id, site_id, zone) VALUES ($1, $2, $3)"
            " ON CONFLICT (tenant_id, site_id) DO UPDATE SET zone = EXCLUDED.zone",
            tenant_id,
            site_id,
            zone.key,
        )
    return remade


async def _move_site(connection: Connection, tenant_id: str, site_id: str, old: ZoneInfo, new: ZoneInfo) -> None:
    """The site's visits from their dates in `old` to their dates in `new`, in the database (no rows fetched)."""
    await connection.execute(MOVE_SITE, tenant_id, site_id, old.key, new.key)


@dataclass(frozen=True)
class RolledUp:
    """Counters of one key of a level, and its dwell per minute."""

    visits: int
    unique_visitors: int
    new_visitors: int
    returning_visitors: int
    returning_visits: int
    dwell_seconds: float
    dwell_minutes: dict[int, int]


async def tenant_days(connection: Connection, first_day: date, end_day: date) -> dict[date, RolledUp]:
    counters = await connection.fetch(
        "SELECT * FROM tenant_days WHERE day >= $1 AND day < $2 AND visits <> 0", first_day, end_day
    )
    minutes = await connection.fetch(
        "SELECT day, minute, visits FROM tenant_day_dwell WHERE day >= $1 AND day < $2 AND visits <> 0",
        first_day,
        end_day,
    )
    return _rolled_up(counters, minutes, lambda row: row["day"])


async def tenant_months(connection: Connection, months: list[date]) -> dict[date, RolledUp]:
    counters = await connection.fetch("SELECT * FROM tenant_months WHERE month = ANY($1::date[])", months)
    minutes = await connection.fetch(
        "SELECT month, minute, visits FROM tenant_month_dwell WHERE month = ANY($1::date[]) AND visits <> 0", months
    )
    return _rolled_up(counters, minutes, lambda row: row["month"])


@dataclass(frozen=True)
class Summary:
    """Counters of one key of a level (or of a range of keys), with the dwell median and distribution that the
    database computed from its dwell per minute (as `dwell_from_minutes` does), so a few rows come back instead
    of a histogram per key."""

    visits: int
    unique_visitors: int
    new_visitors: int
    returning_visitors: int
    returning_visits: int
    dwell_seconds: float
    dwell_seconds_median: float | None
    dwell_distribution: tuple[int, ...]


_MINUTE_BUCKETS = ", ".join(
    f"coalesce(sum(visits) FILTER (WHERE minute >= {b.min_seconds // 60}"
    + ("" if b.max_seconds is None else f" AND minute < {b.max_seconds // 60}")
    + "), 0)"
    for b in DWELL_BUCKETS
)


def _dwell_summaries(histogram: str) -> str:
    """CTEs that end in `dwell (key, median, distribution)` from `histogram`, a query of (key, minute, visits):
    per key, the median to the minute (the minutes of the two middle visits, `seen` counting the visits up to
    each minute) and the `DWELL_BUCKETS` counts, exactly as `dwell_from_minutes` computes them."""
    return f"""
    histogram AS ({histogram}),
    ranked AS (
        SELECT key, minute, visits, sum(visits) OVER (PARTITION BY key ORDER BY minute) AS seen,
               sum(visits) OVER (PARTITION BY key) AS total
        FROM histogram WHERE visits > 0
    ), dwell AS (
        SELECT key,
               30 * (min(minute) FILTER (WHERE seen > (total - 1) / 2) + min(minute) FILTER (WHERE seen > total / 2))
                   ::float8 AS median,
               ARRAY[{_MINUTE_BUCKETS}]::int[] AS distribution
        FROM ranked GROUP BY key
    )"""


def _summaries_sql(level: Level, key: str, where: str) -> str:
    """Each `key` of `level` whose rows match `where` (on the level's own columns) and that has visits."""
    return f"""
    WITH {_dwell_summaries(f"SELECT {key} AS key, minute, visits FROM {level.dwell} WHERE {where}")}
    SELECT c.{key} AS key, c.visits, c.unique_visitors, c.new_visitors, c.returning_visitors, c.returning_visits,
           c.dwell_seconds, d.median AS dwell_seconds_median, d.distribution AS dwell_distribution
    FROM {level.counters} c LEFT JOIN dwell d ON d.key = c.{key}
    WHERE {where} AND c.visits <> 0
    """


_SITE_MONTH, _SITE_DAY = LEVELS[2], LEVELS[3]
_SITE_DAYS = _summaries_sql(_SITE_DAY, "day", "site_id = $1 AND day >= $2 AND day < $3")
_SITE_MONTHS = _summaries_sql(_SITE_MONTH, "site_id", "month = $1 AND site_id = ANY($2::text[])")
_SITE_DAYS_DWELL = (
    "SELECT 0 AS key, minute, sum(visits)::int AS visits FROM site_day_dwell"
    " WHERE site_id = $1 AND day >= $2 AND day < $3 GROUP BY minute"
)
_SITE_DAYS_TOGETHER = f"""
    WITH {_dwell_summaries(_SITE_DAYS_DWELL)}
    SELECT coalesce(sum(visits), 0)::int AS visits, coalesce(sum(returning_visits), 0)::int AS returning_visits,
           coalesce(sum(dwell_seconds), 0) AS dwell_seconds,
           (SELECT median FROM dwell) AS dwell_seconds_median, (SELECT distribution FROM dwell) AS dwell_distribution
    FROM site_days WHERE site_id = $1 AND day >= $2 AND day < $3
"""
"""A site's local dates `$2` up to `$3` together: visits and dwell add up across dates (visitors do not)."""


async def site_days(connection: Connection, site_id: str, first_day: date, end_day: date) -> dict[date, Summary]:
    """The site's local dates from `first_day` up to `end_day` that had visits."""
    rows = await connection.fetch(_SITE_DAYS, site_id, first_day, end_day)
    return {row["key"]: _summary(dict(row)) for row in rows}


async def site_range(
    connection: Connection, site_id: str, first_day: date, end_day: date, months: list[date]
) -> Summary:
    """The site's local dates from `first_day` up to `end_day` together; its distinct visitors from who visited
    each of `months` when the range is those whole months, else from who visited each date."""
    if len(months) == 1:  # one whole month is one row of the month level, and its dwell per minute
        month = await site_months(connection, months[0], [site_id])
        return month.get(site_id, _summary(_NOTHING))
    row = await connection.fetchrow(_SITE_DAYS_TOGETHER, site_id, first_day, end_day)
    assert row is not None
    if months:
        visitors = await connection.fetchrow(
            _DISTINCT_VISITORS.format(persons="site_month_persons WHERE site_id = $1 AND month = ANY($2::date[])"),
            site_id,
            months,
        )
    else:
        visitors = await connection.fetchrow(
            _DISTINCT_VISITORS.format(persons="site_day_persons WHERE site_id = $1 AND day >= $2 AND day < $3"),
            site_id,
            first_day,
            end_day,
        )
    assert visitors is not None
    return _summary(dict(row) | dict(visitors))


_NOTHING = {
    "visits": 0,
    "unique_visitors": 0,
    "new_visitors": 0,
    "returning_visitors": 0,
    "returning_visits": 0,
    "dwell_seconds": 0.0,
    "dwell_seconds_median": None,
    "dwell_distribution": None,
}


_DISTINCT_VISITORS = (
    "SELECT count(*) AS unique_visitors, count(*) FILTER (WHERE new_visits > 0) AS new_visitors,"
    " count(*) FILTER (WHERE returning_visits > 0) AS returning_visitors"
    " FROM (SELECT person_id, sum(new_visits) AS new_visits, sum(returning_visits) AS returning_visits"
    "       FROM {persons} AND visits > 0 GROUP BY person_id) p"
)
"""(unique, new, returning) visitors across the keys of a `*_persons` table that `{persons}` selects."""


async def site_months(connection: Connection, month: date, sites: list[str]) -> dict[str, Summary]:
    """The sites' local `month`, for those that had visits in it."""
    rows = await connection.fetch(_SITE_MONTHS, month, sites)
    return {row["key"]: _summary(dict(row)) for row in rows}


def _summary(row: Mapping[str, Any]) -> Summary:
    distribution = row["dwell_distribution"]
    return Summary(
        row["visits"],
        row["unique_visitors"],
        row["new_visitors"],
        row["returning_visitors"],
        row["returning_visits"],
        row["dwell_seconds"],
        row["dwell_seconds_median"],
        tuple(distribution) if distribution is not None else (0,) * len(DWELL_BUCKETS),
    )


def _rolled_up(
    counters: list[asyncpg.Record], minutes: list[asyncpg.Record], key: Callable[[asyncpg.Record], K]
) -> dict[K, RolledUp]:
    per_key: dict[K, dict[int, int]] = defaultdict(dict)
    for row in minutes:
        per_key[key(row)][row["minute"]] = row["visits"]
    return {
        key(row): RolledUp(
            row["visits"],
            row["unique_visitors"],
            row["new_visitors"],
            row["returning_visitors"],
            row["returning_visits"],
            row["dwell_seconds"],
            per_key[key(row)],
        )
        for row in counters
    }


async def visitors_across_days(connection: Connection, first_day: date, end_day: date) -> tuple[int, int, int]:
    """(unique, new, returning) visitors of the tenant across local dates `first_day` up to `end_day`: for a range
    that is not whole months, from who visited each date."""
    row = await connection.fetchrow(
        _DISTINCT_VISITORS.format(persons="tenant_day_persons WHERE day >= $1 AND day < $2"), first_day, end_day
    )
    assert row is not None
    return row["unique_visitors"], row["new_visitors"], row["returning_visitors"]


async def visitors_across_months(connection: Connection, months: list[date]) -> tuple[int, int, int]:
    """(unique, new, returning) visitors of the tenant across whole local months."""
    row = await connection.fetchrow(
        _DISTINCT_VISITORS.format(persons="tenant_month_persons WHERE month = ANY($1::date[])"), months
    )
    assert row is not None
    return row["unique_visitors"], row["new_visitors"], row["returning_visitors"]
