"""The `reporting` schema: sightings, the visits derived from them, unidentified sightings, and the report queries."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from schemas import FaceMatched, FaceUnidentified
from services.common.postgres import Connection, tenant_transaction
from services.reporting.domain.visits import Sighting, Visit, VisitRules, changed_visits, sessionize_sightings

SCHEMA = "reporting"
ROLE = "revisit_reporting"
Granularity = Literal["hour", "day"]


@dataclass(frozen=True)
class ReportRow:
    period_start: datetime
    visits: int
    unique_visitors: int
    new_visitors: int
    returning_visitors: int
    returning_visits: int
    unidentified_sightings: int


class VisitStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def record_sighting(self, event: FaceMatched, rules: VisitRules) -> list[Visit]:
        """Store the sighting and recompute its person's visits at the site, under a per-person lock.

        Returns the visits that changed; for a sighting already stored, the visit that holds it (so a
        crash between commit and publish is repaired by the redelivery)."""
        async with tenant_transaction(self._pool, event.tenant_id) as connection:
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"{event.tenant_id}/{event.site_id}/{event.person_id}"
            )
            inserted = await connection.fetchval(
                "INSERT INTO sightings (tenant_id, event_id, site_id, camera_id, person_id, captured_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING event_id",
                event.tenant_id,
                event.event_id,
                event.site_id,
                event.camera_id,
                event.person_id,
                event.captured_at,
            )
            before = await _visits_of(connection, event.site_id, event.person_id)
            if inserted is None:
                return [v for v in before if v.started_at <= event.captured_at <= v.last_seen_at]
            rows = await connection.fetch(
                "SELECT event_id, captured_at FROM sightings WHERE site_id = $1 AND person_id = $2",
                event.site_id,
                event.person_id,
            )
            after = sessionize_sightings([Sighting(r["event_id"], r["captured_at"]) for r in rows], rules)
            await _replace_visits(connection, event.tenant_id, event.site_id, event.person_id, after)
        return changed_visits(before, after)

    async def record_unidentified(self, event: FaceUnidentified) -> bool:
        """Store an unidentified sighting; False if this event id was already stored (a redelivery)."""
        async with tenant_transaction(self._pool, event.tenant_id) as connection:
            inserted = await connection.fetchval(
                "INSERT INTO unidentified_sightings (tenant_id, event_id, site_id, camera_id, captured_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING event_id",
                event.tenant_id,
                event.event_id,
                event.site_id,
                event.camera_id,
                event.captured_at,
            )
        return inserted is not None

    async def visitor_report(
        self, tenant_id: str, site_id: str, start: datetime, end: datetime, granularity: Granularity
    ) -> tuple[list[ReportRow], ReportRow]:
        """Per-period counts and the totals of the whole range (distinct persons across it, not a sum).

        Visits count in the period they started in, unidentified sightings in the one they were captured in;
        a period with only unidentified sightings is reported too."""
        query = """
            WITH visit_counts AS (
                SELECT {visit_period} AS period_start,
                       count(*) AS visits,
                       count(DISTINCT person_id) AS unique_visitors,
                       count(DISTINCT person_id) FILTER (WHERE NOT is_returning) AS new_visitors,
                       count(DISTINCT person_id) FILTER (WHERE is_returning) AS returning_visitors,
                       count(*) FILTER (WHERE is_returning) AS returning_visits
                FROM visits
                WHERE site_id = $1 AND started_at >= $2 AND started_at < $3
                {group}
            ), unidentified_counts AS (
                SELECT {unidentified_period} AS period_start, count(*) AS unidentified_sightings
                FROM unidentified_sightings
                WHERE site_id = $1 AND captured_at >= $2 AND captured_at < $3
                {group}
            )
            SELECT coalesce(v.period_start, u.period_start) AS period_start,
                   coalesce(v.visits, 0) AS visits,
                   coalesce(v.unique_visitors, 0) AS unique_visitors,
                   coalesce(v.new_visitors, 0) AS new_visitors,
                   coalesce(v.returning_visitors, 0) AS returning_visitors,
                   coalesce(v.returning_visits, 0) AS returning_visits,
                   coalesce(u.unidentified_sightings, 0) AS unidentified_sightings
            FROM visit_counts v FULL JOIN unidentified_counts u ON u.period_start = v.period_start
            ORDER BY 1
        """
        per_period = query.format(
            visit_period="date_trunc($4, started_at, 'UTC')",
            unidentified_period="date_trunc($4, captured_at, 'UTC')",
            group="GROUP BY 1",
        )
        whole_range = query.format(visit_period="$2::timestamptz", unidentified_period="$2::timestamptz", group="")
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(per_period, site_id, start, end, granularity)
            total = await connection.fetchrow(whole_range, site_id, start, end)
        assert total is not None
        return [_report_row(row) for row in rows], _report_row(total)

    async def list_visits(
        self, tenant_id: str, site_id: str, start: datetime, end: datetime
    ) -> list[tuple[uuid.UUID, Visit]]:
        """Visits that started in [start, end), with their person."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                "SELECT visit_id, started_at, last_seen_at, sightings, is_returning, person_id FROM visits"
                " WHERE site_id = $1 AND started_at >= $2 AND started_at < $3 ORDER BY started_at",
                site_id,
                start,
                end,
            )
        return [(row["person_id"], _visit(row)) for row in rows]


async def _visits_of(connection: Connection, site_id: str, person_id: uuid.UUID) -> list[Visit]:
    rows = await connection.fetch(
        "SELECT visit_id, started_at, last_seen_at, sightings, is_returning FROM visits"
        " WHERE site_id = $1 AND person_id = $2 ORDER BY started_at",
        site_id,
        person_id,
    )
    return [_visit(row) for row in rows]


async def _replace_visits(
    connection: Connection, tenant_id: str, site_id: str, person_id: uuid.UUID, visits: list[Visit]
) -> None:
    await connection.execute(
        "DELETE FROM visits WHERE site_id = $1 AND person_id = $2 AND NOT (visit_id = ANY($3::uuid[]))",
        site_id,
        person_id,
        [v.visit_id for v in visits],
    )
    await connection.executemany(
        """
        INSERT INTO visits (tenant_id, visit_id, site_id, person_id, started_at, last_seen_at, sightings, is_returning)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (tenant_id, visit_id) DO UPDATE
          SET started_at = EXCLUDED.started_at, last_seen_at = EXCLUDED.last_seen_at,
              sightings = EXCLUDED.sightings, is_returning = EXCLUDED.is_returning, updated_at = now()
        """,
        [
            (tenant_id, v.visit_id, site_id, person_id, v.started_at, v.last_seen_at, v.sightings, v.is_returning)
            for v in visits
        ],
    )


def _visit(row: asyncpg.Record) -> Visit:
    return Visit(row["visit_id"], row["started_at"], row["last_seen_at"], row["sightings"], row["is_returning"])


def _report_row(row: asyncpg.Record) -> ReportRow:
    return ReportRow(**dict(row))
