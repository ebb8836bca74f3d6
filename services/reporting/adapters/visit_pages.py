"""Read-side queries on the `reporting` schema that serve analysts page by page: visits in keyset pages, visits
as a CSV stream (a server-side cursor read in chunks, so an export of any size holds one chunk in memory),
occupancy per local hour, the visits open now, and the per-site figures behind the business metrics.

Days and hours are the site's own: each query takes the site's IANA zone and truncates in it, so a DST day has
23 or 25 hourly buckets. Timestamps come back as aware datetimes (JSON) or as ISO 8601 text in the site's
offset (CSV)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.common.postgres import tenant_transaction

LONGEST_VISIT = timedelta(days=1)
"""How far back a visit may have started and still be going on: the open-visit and occupancy queries read visits
by their start (the index they have), so a visit longer than this (a sighting every 29 minutes for a day) is
not seen as open nor as occupying later hours."""
DWELL_BUCKETS = (60, 300, 900, 1800, 3600, 7200)
"""Upper bounds (seconds) of the dwell distribution the business metrics export, beside +Inf."""
_VISIT_COLUMNS = "visit_id, person_id, started_at, last_seen_at, sightings, is_returning"
CSV_CHUNKS_AHEAD = 2
"""Chunks of a CSV export the copy may be ahead of the client: what an export holds in memory, besides the one
being filled."""
CSV_COLUMNS = ("visit_id", "person_id", "started_at", "last_seen_at", "dwell_seconds", "sightings", "is_returning")
"""The header of a visits export, in the order of the values of the lines `stream_visit_csv` yields."""


@dataclass(frozen=True)
class VisitKey:
    """Where a page of visits ends: visits are ordered by (started_at, visit_id), which is unique."""

    started_at: datetime
    visit_id: uuid.UUID


@dataclass(frozen=True)
class VisitRow:
    visit_id: uuid.UUID
    person_id: uuid.UUID
    started_at: datetime
    last_seen_at: datetime
    sightings: int
    is_returning: bool

    @property
    def dwell_seconds(self) -> float:
        """Last sighting minus first: 0 for a visit of one sighting."""
        return (self.last_seen_at - self.started_at).total_seconds()

    @property
    def key(self) -> VisitKey:
        return VisitKey(self.started_at, self.visit_id)


@dataclass(frozen=True)
class HourOccupancy:
    hour_start: datetime
    visits: int
    """Visits that overlap the hour: started before it ended and last seen at or after it began."""


@dataclass(frozen=True)
class SiteDay:
    """A site and its current local day, in UTC instants."""

    site_id: str
    day_start: datetime
    day_end: datetime


@dataclass(frozen=True)
class SiteFigures:
    """One site's figures for its current local day, and its visits open now."""

    site_id: str
    visits: int
    visitors: int
    returning_visits: int
    open_now: int
    dwell_mean_seconds: float
    dwell_median_seconds: float
    dwell_at_most: dict[int, int]
    """Visits of the day whose dwell is at most each of DWELL_BUCKETS seconds (cumulative, as Prometheus's `le`)."""


class VisitPages:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page(
        self, tenant_id: str, site_id: str, start: datetime, end: datetime, limit: int, after: VisitKey | None
    ) -> list[VisitRow]:
        """Up to `limit` visits that started in [start, end) at the site, after `after` in (started_at,
        visit_id) order: each visit is on exactly one page, also when many share a started_at."""
        # the first page and the next ones are two statements: a row comparison behind an OR would not use the index;
        # `started_at >= $5` repeats the comparison's first column so the (site, started_at) index bounds the scan
        after_key = (
            "" if after is None else " AND started_at >= $5 AND (started_at, visit_id) > ($5::timestamptz, $6::uuid)"
        )
        query = (
            f"SELECT {_VISIT_COLUMNS} FROM visits WHERE site_id = $1 AND started_at >= $2 AND started_at < $3"
            f"{after_key} ORDER BY started_at, visit_id LIMIT $4"
        )
        arguments = () if after is None else (after.started_at, after.visit_id)
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(query, site_id, start, end, limit, *arguments)
        return [VisitRow(**dict(row)) for row in rows]

    async def stream_visit_csv(
        self, tenant_id: str, site_id: str, start: datetime, end: datetime, time_zone: str, chunk_bytes: int
    ) -> AsyncIterator[bytes]:
        """Every visit that started in [start, end) at the site, oldest first, as CSV lines of CSV_COLUMNS (no
        header, CRLF-terminated) in chunks of about `chunk_bytes`, so memory holds a chunk or two whatever the
        export's size.

        Postgres writes the CSV itself (`COPY (...) TO STDOUT`): no row is decoded in Python, which only joins
        what arrives into chunks and hands them on; the copy waits while the client has not taken the chunks
        before. Timestamps are Postgres' ISO 8601 output in `time_zone`'s offset (`2026-11-02T09:00:00+01`,
        `...+05:30`), which every ISO 8601 reader takes. No value needs CSV quoting (ids, timestamps, numbers,
        true/false). The transaction (and a pooled connection) stays open while the caller consumes the chunks;
        closing the iterator early (a client that went away) cancels the copy."""
        query = (
            "SELECT visit_id, person_id, replace(started_at::text, ' ', 'T'), replace(last_seen_at::text, ' ', 'T'),"
            " extract(epoch FROM last_seen_at - started_at)::float8, sightings, is_returning::text"
            " FROM visits WHERE site_id = $1 AND started_at >= $2 AND started_at < $3 ORDER BY started_at, visit_id"
        )
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=CSV_CHUNKS_AHEAD)
        pending = bytearray()

        async def collect(data: bytes) -> None:
            pending.extend(data)
            if len(pending) >= chunk_bytes:
                await chunks.put(bytes(pending).replace(b"\n", b"\r\n"))
                pending.clear()

        async with tenant_transaction(self._pool, tenant_id) as connection:
            await connection.execute(
                "SELECT set_config('TimeZone', $1, true), set_config('DateStyle', 'ISO, YMD', true)", time_zone
            )

            async def copy() -> None:
                try:
                    await connection.copy_from_query(query, site_id, start, end, output=collect, format="csv")
                    if pending:
                        await chunks.put(bytes(pending).replace(b"\n", b"\r\n"))
                finally:
                    await chunks.put(None)

            copying = asyncio.create_task(copy())
            try:
                while (chunk := await chunks.get()) is not None:
                    yield chunk
                await copying  # raises what the copy raised
            finally:
                if not copying.done():
                    copying.cancel()
                    await asyncio.gather(copying, return_exceptions=True)

    async def occupancy_by_hour(
        self, tenant_id: str, site_id: str, start: datetime, end: datetime, time_zone: str
    ) -> list[HourOccupancy]:
        """Every local hour of [start, end) (23 or 25 on a DST day), with the visits that overlap it: a visit
        occupies each hour from the one it started in to the one it was last seen in."""
        query = """
            WITH hours AS (
                SELECT generate_series(date_trunc('hour', $2::timestamptz, $4),
                                       $3::timestamptz - interval '1 microsecond', interval '1 hour') AS hour_start
            ), occupied AS (
                SELECT generate_series(date_trunc('hour', started_at, $4), last_seen_at, interval '1 hour')
                       AS hour_start
                FROM visits
                WHERE site_id = $1 AND started_at < $3 AND started_at >= $2::timestamptz - $5::interval
                  AND last_seen_at >= $2
            )
            SELECT h.hour_start, count(o.hour_start) AS visits
            FROM hours h LEFT JOIN occupied o USING (hour_start)
            GROUP BY h.hour_start ORDER BY h.hour_start
        """
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(query, site_id, start, end, time_zone, LONGEST_VISIT)
        return [HourOccupancy(row["hour_start"], row["visits"]) for row in rows]

    async def open_visits(self, tenant_id: str, site_id: str, now: datetime, gap: timedelta) -> list[VisitRow]:
        """The visits still going on at `now`: last seen less than the visit gap before it (a sighting now
        would still join them), oldest first."""
        query = (
            f"SELECT {_VISIT_COLUMNS} FROM visits WHERE site_id = $1 AND started_at >= $2 AND last_seen_at > $3"
            " ORDER BY started_at, visit_id"
        )
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(query, site_id, now - LONGEST_VISIT, now - gap)
        return [VisitRow(**dict(row)) for row in rows]

    async def site_figures(
        self, tenant_id: str, days: list[SiteDay], now: datetime, gap: timedelta
    ) -> list[SiteFigures]:
        """For each of the tenant's sites: its local day's visits, visitors, returning visits and dwell, and
        its visits open at `now`, in one query."""
        buckets = ", ".join(
            f"count(v.visit_id) FILTER (WHERE v.last_seen_at - v.started_at <= interval '{bound} s') AS le_{bound}"
            for bound in DWELL_BUCKETS
        )
        query = f"""
            WITH days AS (
                SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS d(site_id, day_start, day_end)
            )
            SELECT d.site_id,
                   count(v.visit_id) AS visits,
                   count(DISTINCT v.person_id) AS visitors,
                   count(v.visit_id) FILTER (WHERE v.is_returning) AS returning_visits,
                   coalesce(avg(extract(epoch FROM v.last_seen_at - v.started_at)), 0)::float8 AS dwell_mean,
                   coalesce(percentile_cont(0.5) WITHIN GROUP
                            (ORDER BY extract(epoch FROM v.last_seen_at - v.started_at)), 0)::float8 AS dwell_median,
                   {buckets},
                   (SELECT count(*) FROM visits o WHERE o.site_id = d.site_id AND o.started_at >= $4
                      AND o.last_seen_at > $5) AS open_now
            FROM days d
            LEFT JOIN visits v ON v.site_id = d.site_id AND v.started_at >= d.day_start AND v.started_at < d.day_end
            GROUP BY d.site_id ORDER BY d.site_id
        """
        arguments = (
            [day.site_id for day in days],
            [day.day_start for day in days],
            [day.day_end for day in days],
            now - LONGEST_VISIT,
            now - gap,
        )
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(query, *arguments)
        return [
            SiteFigures(
                site_id=row["site_id"],
                visits=row["visits"],
                visitors=row["visitors"],
                returning_visits=row["returning_visits"],
                open_now=row["open_now"],
                dwell_mean_seconds=row["dwell_mean"],
                dwell_median_seconds=row["dwell_median"],
                dwell_at_most={bound: row[f"le_{bound}"] for bound in DWELL_BUCKETS},
            )
            for row in rows
        ]
