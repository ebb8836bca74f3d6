"""The `reporting` schema: sightings, the visits derived from them, unidentified sightings, persons merged or
erased (retired), the kinds operators gave persons, the lifecycle operations done, and the report queries.

A sighting counts towards visits when its person is a customer: the kind an operator last gave the person
(`person_kinds`, from `PersonKindChanged`), else the kind the sighting arrived with. The operator's mark wins,
so a staff sighting of a person marked customer counts, and a customer sighting of one marked staff does not."""

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

from schemas import (
    FaceMatched,
    FaceUnidentified,
    PersonErased,
    PersonKind,
    PersonKindChanged,
    PersonsMerged,
    PersonSplit,
)
from services.common.postgres import Connection, tenant_transaction
from services.reporting.adapters import rollups
from services.reporting.domain.lifecycle import (
    OperationKind,
    OperationOutcome,
    lock_order,
    outcome_from_json,
    outcome_to_json,
)
from services.reporting.domain.reports import DWELL_BUCKETS, dwell_from_minutes
from services.reporting.domain.visits import (
    Neighbourhood,
    PersonSighting,
    PersonVisit,
    Sighting,
    Visit,
    VisitChanges,
    VisitRules,
    diff_visits,
    neighbourhood_bounds,
    refold_neighbourhood,
    visits_of_sightings,
)

SCHEMA = "reporting"
ROLE = "revisit_reporting"
Granularity = Literal["hour", "day"]


@dataclass(frozen=True)
class Counts:
    """What a report says of a period, a site or a whole range (see domain/reports.py for the definitions)."""

    visits: int
    unique_visitors: int
    new_visitors: int
    returning_visitors: int
    returning_visits: int
    unidentified_sightings: int
    dwell_seconds_avg: float | None
    dwell_seconds_median: float | None
    dwell_distribution: tuple[int, ...]
    """Visits per `DWELL_BUCKETS` bucket, in its order."""


@dataclass(frozen=True)
class ReportRow(Counts):
    """A site's period (local hour or day), or the range's totals; `period_start` carries the local offset."""

    period_start: datetime


@dataclass(frozen=True)
class DayCounts(Counts):
    """A tenant's local date: every visit on its own site's local date."""

    day: date


@dataclass(frozen=True)
class SiteCounts(Counts):
    """One site's totals over a range of its local dates."""

    site_id: str


_DWELL_BUCKET_COUNTS = ", ".join(
    f"count(*) FILTER (WHERE dwell >= {b.min_seconds}"
    + ("" if b.max_seconds is None else f" AND dwell < {b.max_seconds}")
    + ")"
    for b in DWELL_BUCKETS
)
_VISIT_FIGURES = (
    """count(*) AS visits,
               count(DISTINCT person_id) AS unique_visitors,
               count(DISTINCT person_id) FILTER (WHERE NOT is_returning) AS new_visitors,
               count(DISTINCT person_id) FILTER (WHERE is_returning) AS returning_visitors,
               count(*) FILTER (WHERE is_returning) AS returning_visits,
               avg(dwell) AS dwell_seconds_avg,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY dwell) AS dwell_seconds_median,
               ARRAY["""
    + _DWELL_BUCKET_COUNTS
    + """]::int[] AS dwell_distribution"""
)
"""The aggregates of a report over rows of visits (`person_id`, `is_returning`, `dwell` in seconds)."""
_FIGURES_OR_ZEROS = (
    """coalesce(v.visits, 0) AS visits,
           coalesce(v.unique_visitors, 0) AS unique_visitors,
           coalesce(v.new_visitors, 0) AS new_visitors,
           coalesce(v.returning_visitors, 0) AS returning_visitors,
           coalesce(v.returning_visits, 0) AS returning_visits,
           coalesce(u.unidentified_sightings, 0) AS unidentified_sightings,
           v.dwell_seconds_avg,
           v.dwell_seconds_median,
           coalesce(v.dwell_distribution, array_fill(0, ARRAY["""
    + str(len(DWELL_BUCKETS))
    + """])) AS dwell_distribution"""
)
"""The final select list of a report: `v` (`_VISIT_FIGURES` of a period or key) beside `u` (its unidentified
sightings), either of them missing."""
_REPORT_QUERY = (
    """
    WITH visit_counts AS (
        SELECT {visit_period} AS period_start, """
    + _VISIT_FIGURES
    + """
        FROM (SELECT started_at, person_id, is_returning,
                     extract(epoch FROM last_seen_at - started_at)::float8 AS dwell
              FROM visits WHERE site_id = $1 AND started_at >= $2 AND started_at < $3) v
        {group}
    ), unidentified_counts AS (
        SELECT {unidentified_period} AS period_start, count(*) AS unidentified_sightings
        FROM unidentified_sightings
        WHERE site_id = $1 AND captured_at >= $2 AND captured_at < $3
        {group}
    )
    SELECT coalesce(v.period_start, u.period_start) AS period_start, """
    + _FIGURES_OR_ZEROS
    + """
    FROM visit_counts v FULL JOIN unidentified_counts u ON u.period_start = v.period_start
    ORDER BY 1
"""
)
"""A site's visitor report; `{visit_period}`/`{unidentified_period}` bucket rows, `{group}` groups them or not.
A visit's dwell is computed once per row (`dwell`, seconds) for the average, median and distribution."""

_COUNTS_AS_CUSTOMER = "coalesce(k.kind, s.person_kind) = 'customer'"
"""SQL on `sightings s LEFT JOIN person_kinds k`: the operator's mark of the person wins over the sighting's kind."""


class OwnerChanged(RuntimeError):
    """A person was merged or erased between reading its owner and locking it: retry the sighting."""


class VisitArchived(RuntimeError):
    """A refolded visit has the id of an archived one (a sighting older than retention came again): not counted."""


@dataclass(frozen=True)
class SightingOutcome:
    """Who a sighting was recorded under (None: the person was erased, so it was dropped) and what changed."""

    owner: uuid.UUID | None
    visits: VisitChanges


PARTITIONED_TABLES = ("sightings", "visits")
"""Monthly range partitions (UTC months): sightings by captured_at, visits by started_at."""


def month_of(moment: datetime) -> datetime:
    """The start of the UTC month `moment` is in: its partition's lower bound."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


class VisitStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._months_ready: set[datetime] = set()
        """Months whose partitions this process has made sure of: most batches need no round trip for it."""

    async def ensure_partitions(self, first: datetime, last: datetime) -> int:
        """Make the monthly partitions of sightings and visits from `first`'s month to `last`'s (as the schema
        owner, in a transaction of their own, so no batch holds locks while the tables change); how many were
        made."""
        months = []
        month = month_of(first)
        while month <= last:
            months.append(month)
            month = month_of(month + timedelta(days=32))
        missing = [m for m in months if m not in self._months_ready]
        if not missing:
            return 0
        made = 0
        async with self._pool.acquire() as connection, connection.transaction():
            for table in PARTITIONED_TABLES:
                made += await connection.fetchval(
                    "SELECT ensure_month_partitions($1, $2, $3)", table, min(missing), max(missing)
                )
        self._months_ready.update(missing)
        return made

    async def partitions_ending_by(self, table: str, horizon: datetime) -> list[datetime]:
        """When each monthly partition of `table` that ends at or before `horizon` ends."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT ends_at FROM month_partitions($1) WHERE ends_at <= $2 ORDER BY ends_at", table, horizon
            )
        return [row["ends_at"] for row in rows]

    async def archive_and_count_before(
        self, tenant_id: str, sightings_end: datetime | None, visits_end: datetime | None
    ) -> dict[str, int]:
        """Before partitions are dropped: archive the tenant's visits that started before `sightings_end` (their
        sightings go with the partitions, so they can no longer be recomputed: a merge or split leaves archived
        visits alone) and count the tenant's rows the drop takes (sightings before `sightings_end`, visits
        before `visits_end`; None: no partition of that table goes)."""
        counts = {"sightings": 0, "visits_archived": 0, "visits": 0}
        async with tenant_transaction(self._pool, tenant_id) as connection:
            if sightings_end is not None:
                counts["sightings"] = await connection.fetchval(
                    "SELECT count(*) FROM sightings WHERE captured_at < $1", sightings_end
                )
                archived = await connection.execute(
                    "UPDATE visits SET archived = true WHERE NOT archived AND started_at < $1", sightings_end
                )
                counts["visits_archived"] = _row_count(archived)
            if visits_end is not None:
                rows = await connection.fetch(
                    "SELECT site_id, person_id, visit_id, started_at, last_seen_at, sightings, is_returning"
                    " FROM visits WHERE started_at >= $1 AND started_at < $2",
                    await _rollups_dropped_before(connection),
                    visits_end,
                )
                dropped = [PersonVisit(row["site_id"], row["person_id"], _visit(row)) for row in rows]
                await rollups.apply_visit_changes(connection, tenant_id, dropped, [])  # their partitions go
                await connection.execute(
                    "INSERT INTO rollups_dropped_before (tenant_id, before) VALUES ($1, $2)"
                    " ON CONFLICT (tenant_id) DO UPDATE SET before = greatest(rollups_dropped_before.before, $2)",
                    tenant_id,
                    visits_end,
                )
                counts["visits"] = len(rows)
        return counts

    async def drop_partitions_before(self, table: str, horizon: datetime) -> list[str]:
        """Drop the monthly partitions of `table` that end at or before `horizon`; their names."""
        self._months_ready = {m for m in self._months_ready if m >= horizon}
        async with self._pool.acquire() as connection, connection.transaction():
            dropped: list[str] = await connection.fetchval(
                "SELECT drop_month_partitions_before($1, $2)", table, horizon
            )
        return dropped

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def record_sighting(self, event: FaceMatched, rules: VisitRules) -> SightingOutcome:
        """`record_sightings` of one event."""
        return (await self.record_sightings([event], rules))[0]

    async def record_sightings(self, events: Sequence[FaceMatched], rules: VisitRules) -> list[SightingOutcome]:
        """Store the sightings (staff too, with the kind they arrived with) under their persons and fold them
        into those persons' visits, one transaction per tenant, under the persons' locks; an outcome per event,
        in order.

        A sighting a split claimed is recorded under the person it was split to; one of a merged person under
        the person it was merged into; one of an erased person is not stored (owner None). Only the visits
        within a gap of the new sightings are recomputed (`refold_neighbourhood`), and the next visit's
        `is_returning`. Each new sighting's outcome holds the visit that now holds it; the first of a person's
        sightings at a site also holds the other visits changed or removed. For a sighting already stored the
        outcome is the visit that holds it, so a crash between commit and publish is repaired by the
        redelivery, which announces the same visit records."""
        if not events:
            return []
        moments = [event.captured_at for event in events]
        await self.ensure_partitions(min(moments), max(moments))
        try:
            return await self._record_sightings(events, rules)
        except asyncpg.CheckViolationError as error:
            if "no partition" not in str(error):
                raise
            # a retention run dropped a month this process had made: make it again (the next run drops it)
            self._months_ready.clear()
            await self.ensure_partitions(min(moments), max(moments))
            return await self._record_sightings(events, rules)

    async def _record_sightings(self, events: Sequence[FaceMatched], rules: VisitRules) -> list[SightingOutcome]:
        outcomes: dict[int, SightingOutcome] = {}
        by_tenant: dict[str, list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            by_tenant[event.tenant_id].append(index)
        for tenant_id, indexes in by_tenant.items():
            batch = [events[i] for i in indexes]
            async with tenant_transaction(self._pool, tenant_id) as connection:
                tenant_outcomes = await _record_tenant_sightings(connection, tenant_id, batch, rules)
            outcomes.update(zip(indexes, tenant_outcomes, strict=True))
        return [outcomes[i] for i in range(len(events))]

    async def merge_persons(self, event: PersonsMerged, rules: VisitRules) -> OperationOutcome:
        """Move the sightings of `merged_person_ids` to `person_id`, retire the merged persons (their late
        sightings go to `person_id`), and recompute the visits of all of them, in one transaction."""
        target, merged = event.person_id, list(event.merged_person_ids)

        async def change(connection: Connection) -> int:
            moved = await connection.execute(
                "UPDATE sightings SET person_id = $1 WHERE person_id = ANY($2::uuid[])", target, merged
            )
            archived = await _archived_visits_of(connection, merged)
            await connection.execute(  # archived visits have no sightings left to recompute them from
                "UPDATE visits SET person_id = $1 WHERE person_id = ANY($2::uuid[]) AND archived", target, merged
            )
            taken_over = [PersonVisit(p.site_id, target, p.visit) for p in archived]
            await rollups.apply_visit_changes(connection, event.tenant_id, archived, taken_over)
            await _retire(connection, event.tenant_id, merged, target, event.operation_id)
            await connection.execute("DELETE FROM retired_persons WHERE person_id = $1", target)
            return _row_count(moved)

        return await self._operate(
            event.tenant_id, event.operation_id, "merge", target, [target, *merged], change, rules
        )

    async def split_person(self, event: PersonSplit, rules: VisitRules) -> OperationOutcome:
        """Move the named sightings of `person_id` to `new_person_id` (no longer retired, if a merge is being
        undone) and recompute the visits of both, in one transaction. Named sightings not here yet (still in
        flight from the matcher) are claimed for `new_person_id`, so they land there when they arrive."""

        async def change(connection: Connection) -> int:
            sighting_ids = list(event.sighting_ids)
            moved = await connection.execute(
                "UPDATE sightings SET person_id = $1 WHERE person_id = $2 AND source_event_id = ANY($3::uuid[])",
                event.new_person_id,
                event.person_id,
                sighting_ids,
            )
            await connection.execute(
                "INSERT INTO claimed_sightings (tenant_id, source_event_id, person_id, operation_id)"
                " SELECT $1, id, $2, $3 FROM unnest($4::uuid[]) AS id"
                " WHERE NOT EXISTS (SELECT FROM sightings WHERE source_event_id = id)"
                " ON CONFLICT (tenant_id, source_event_id) DO UPDATE"
                " SET person_id = EXCLUDED.person_id, operation_id = EXCLUDED.operation_id",
                event.tenant_id,
                event.new_person_id,
                event.operation_id,
                sighting_ids,
            )
            await connection.execute("DELETE FROM retired_persons WHERE person_id = $1", event.new_person_id)
            return _row_count(moved)

        persons = [event.person_id, event.new_person_id]
        return await self._operate(
            event.tenant_id, event.operation_id, "split", event.person_id, persons, change, rules
        )

    async def erase_person(self, event: PersonErased, rules: VisitRules) -> OperationOutcome:
        """Delete the person's sightings, visits and kind (and the kinds of persons merged into it) and retire
        the person with no successor, so a late sighting of it (or of a person merged into it) is dropped."""

        async def change(connection: Connection) -> int:
            deleted = await connection.execute("DELETE FROM sightings WHERE person_id = $1", event.person_id)
            archived = await _archived_visits_of(connection, [event.person_id])
            await connection.execute("DELETE FROM visits WHERE person_id = $1 AND archived", event.person_id)
            await rollups.apply_visit_changes(connection, event.tenant_id, archived, [])
            await connection.execute(
                "DELETE FROM person_kinds WHERE person_id = $1"
                " OR person_id IN (SELECT person_id FROM retired_persons WHERE successor_id = $1)",
                event.person_id,
            )
            await _retire(connection, event.tenant_id, [event.person_id], None, event.operation_id)
            return _row_count(deleted)

        return await self._operate(
            event.tenant_id, event.operation_id, "erase", event.person_id, [event.person_id], change, rules
        )

    async def change_person_kind(self, event: PersonKindChanged, rules: VisitRules) -> OperationOutcome:
        """Remember the kind an operator gave the person and recompute its visits from all its stored sightings:
        marked staff, its visits go (removed); a customer again, they come back with the same ids (a visit id
        derives from its first sighting). `changed` is the number of sightings whose counting flipped."""

        async def change(connection: Connection) -> int:
            flipped = await connection.fetchval(
                "SELECT count(*) FROM sightings s LEFT JOIN person_kinds k USING (tenant_id, person_id)"
                " WHERE s.person_id = $1 AND coalesce(k.kind, s.person_kind) <> $2",
                event.person_id,
                event.kind.value,
            )
            await connection.execute(
                "INSERT INTO person_kinds (tenant_id, person_id, kind, operation_id) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id, person_id) DO UPDATE"
                " SET kind = EXCLUDED.kind, operation_id = EXCLUDED.operation_id, marked_at = now()",
                event.tenant_id,
                event.person_id,
                event.kind.value,
                event.operation_id,
            )
            return int(flipped)

        return await self._operate(
            event.tenant_id,
            event.operation_id,
            "kind_change",
            event.person_id,
            [event.person_id],
            change,
            rules,
            event.kind,
        )

    async def _operate(
        self,
        tenant_id: str,
        operation_id: uuid.UUID,
        kind: OperationKind,
        person_id: uuid.UUID,
        persons: list[uuid.UUID],
        change: Callable[[Connection], Awaitable[int]],
        rules: VisitRules,
        person_kind: PersonKind | None = None,
    ) -> OperationOutcome:
        """Do an operation once: lock its persons, apply `change`, recompute their visits at every site and
        store the outcome; an operation already done returns its stored outcome and changes nothing."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            await _lock_persons(connection, tenant_id, persons)
            done = await _stored_outcome(connection, operation_id)
            if done is not None:
                return done
            before = await _visits_of(connection, persons)
            changed = await change(connection)
            after = visits_of_sightings(await _sightings_of(connection, persons), rules)
            await _replace_visits(connection, tenant_id, persons, after)
            await rollups.apply_visit_changes(connection, tenant_id, before, after)
            outcome = OperationOutcome(
                operation_id, kind, person_id, changed, diff_visits(before, after), datetime.now(UTC), person_kind
            )
            await connection.execute(
                "INSERT INTO lifecycle_operations (tenant_id, operation_id, kind, person_id, outcome, completed_at)"
                " VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
                tenant_id,
                operation_id,
                kind,
                person_id,
                outcome_to_json(outcome),
                outcome.completed_at,
            )
        return outcome

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

    async def persons_with_sightings_before(self, tenant_id: str, before: datetime) -> list[uuid.UUID]:
        """The persons with a sighting captured before `before`: those retention may touch."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                "SELECT DISTINCT person_id FROM sightings WHERE captured_at < $1 ORDER BY person_id", before
            )
        return [row["person_id"] for row in rows]

    async def expire_sightings_of(self, tenant_id: str, persons: list[uuid.UUID], before: datetime) -> tuple[int, int]:
        """Under the persons' locks (as the sighting path and operations take them): delete their sightings
        captured before `before` except those of a visit still going on at `before`, and archive their visits
        that ended before it, whose sightings are now all gone. Returns (sightings deleted, visits archived);
        a repeat deletes and archives nothing."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            await _lock_persons(connection, tenant_id, persons)
            deleted = await connection.execute(
                """
                DELETE FROM sightings s WHERE s.person_id = ANY($1::uuid[]) AND s.captured_at < $2
                  AND NOT EXISTS (SELECT FROM visits v WHERE v.person_id = s.person_id AND v.site_id = s.site_id
                                  AND NOT v.archived AND v.started_at <= s.captured_at AND v.last_seen_at >= $2)
                """,
                persons,
                before,
            )
            archived = await connection.execute(
                "UPDATE visits SET archived = true WHERE person_id = ANY($1::uuid[]) AND NOT archived"
                " AND last_seen_at < $2",
                persons,
                before,
            )
        return _row_count(deleted), _row_count(archived)

    async def expire_unidentified_and_visits(
        self, tenant_id: str, sightings_before: datetime, visits_before: datetime
    ) -> tuple[int, int]:
        """Delete unidentified sightings captured before `sightings_before` and archived visits that started
        before `visits_before` (a visit not archived still has its sightings, which would bring it back).
        Returns (unidentified sightings, visits) deleted."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            unidentified = await connection.execute(
                "DELETE FROM unidentified_sightings WHERE captured_at < $1", sightings_before
            )
            deleted = await connection.fetch(
                "DELETE FROM visits WHERE archived AND started_at < $1"
                " RETURNING site_id, person_id, visit_id, started_at, last_seen_at, sightings, is_returning",
                visits_before,
            )
            taken_out_before = await _rollups_dropped_before(connection)
            gone = [
                PersonVisit(row["site_id"], row["person_id"], _visit(row))
                for row in deleted
                if row["started_at"] >= taken_out_before
            ]
            await rollups.apply_visit_changes(connection, tenant_id, gone, [])
        return _row_count(unidentified), len(deleted)

    async def visitor_report(
        self,
        tenant_id: str,
        site_id: str,
        start: datetime,
        end: datetime,
        granularity: Granularity,
        zone: ZoneInfo,
    ) -> tuple[list[ReportRow], ReportRow]:
        """Per-period counts and the totals of the whole range (distinct persons across it, not a sum).

        Periods are the site's local hours or days in `zone` (the site's IANA time zone): a DST change day has
        23 or 25 hourly periods, and each `period_start` carries the local offset. Visits count in the period
        they started in, unidentified sightings in the one they were captured in; a period with only
        unidentified sightings is reported too. Whole local days are read from the site-day rollups (the site's
        rollups are remade in `zone` first if they were in another; the median dwell is then to the minute),
        hours and ranges that start or end within a day from the visits."""
        days = _local_days(start, end, zone) if granularity == "day" else None
        async with tenant_transaction(self._pool, tenant_id) as connection:
            if days is not None:
                return await _rolled_site_report(connection, tenant_id, site_id, start, end, *days, zone)
            per_period = _REPORT_QUERY.format(
                visit_period="date_trunc($4, started_at, $5)",
                unidentified_period="date_trunc($4, captured_at, $5)",
                group="GROUP BY 1",
            )
            whole_range = _REPORT_QUERY.format(
                visit_period="$2::timestamptz", unidentified_period="$2::timestamptz", group=""
            )
            rows = await connection.fetch(per_period, site_id, start, end, granularity, zone.key)
            total = await connection.fetchrow(whole_range, site_id, start, end)
        assert total is not None
        return [_report_row(row, zone) for row in rows], _report_row(total, zone)

    async def tenant_report(
        self, tenant_id: str, first_day: date, end_day: date, zones: Mapping[str, ZoneInfo]
    ) -> tuple[list[DayCounts], Counts]:
        """The tenant's visitors per local date, from `first_day` up to `end_day` (exclusive), and the totals of
        the range; `zones` are the tenant's sites' IANA zones (site id -> zone), from the registry.

        A visit counts on its own site's local date (at the same instant it is 22:30 in New York and 04:30 the
        next day in Berlin). A date's unique visitors are the distinct persons with a visit on it at any site;
        new ones had a visit that was not returning (at its site), returning ones a returning visit, so a person
        new at one site and returning at another that day is both. The totals count distinct persons across the
        whole range, not a sum of dates. Read from the rollups (a site whose zone changed is remade first);
        unidentified sightings are counted from their rows."""
        months = _whole_months(first_day, end_day)
        async with tenant_transaction(self._pool, tenant_id) as connection:
            await rollups.reconcile_zones(connection, tenant_id, zones)
            days = await rollups.tenant_days(connection, first_day, end_day)
            unidentified = await _unidentified_by(connection, "day", first_day, end_day, zones)
            if len(months) == 1:
                whole = (await rollups.tenant_months(connection, months)).get(months[0])
                visitors = (whole.unique_visitors, whole.new_visitors, whole.returning_visitors) if whole else (0, 0, 0)
            elif months:
                visitors = await rollups.visitors_across_months(connection, months)
            else:
                visitors = await rollups.visitors_across_days(connection, first_day, end_day)
        periods = [
            DayCounts(**_rolled_counts(days.get(day), unidentified.get(day, 0)), day=day)
            for day in sorted(set(days) | set(unidentified))
        ]
        total = _rolled_total(list(days.values()), visitors, sum(unidentified.values()))
        return periods, total

    async def site_comparison(
        self, tenant_id: str, first_day: date, end_day: date, zones: Mapping[str, ZoneInfo]
    ) -> list[SiteCounts]:
        """The sites of `zones` side by side, each with its totals over its local dates from `first_day` up to
        `end_day` (exclusive); sites with neither visits nor unidentified sightings are left out. A whole local
        month is read from the rollups; another range from the visits."""
        months = _whole_months(first_day, end_day)
        async with tenant_transaction(self._pool, tenant_id) as connection:
            await rollups.reconcile_zones(connection, tenant_id, zones)
            if len(months) != 1:
                rows = await connection.fetch(
                    _tenant_query("site_id", "GROUP BY 1"), *_tenant_params(first_day, end_day, zones)
                )
                return [SiteCounts(**_counts_of(row, "key"), site_id=row["key"]) for row in rows]
            sites = await rollups.site_months(connection, months[0], list(zones))
            unidentified = await _unidentified_by(connection, "site_id", first_day, end_day, zones)
        return [
            SiteCounts(**_summary_counts(sites.get(site), unidentified.get(site, 0)), site_id=site)
            for site in sorted(set(sites) | set(unidentified))
        ]

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


async def _lock_persons(connection: Connection, tenant_id: str, persons: Iterable[uuid.UUID]) -> None:
    """Per-person transaction locks, in one global order: the sighting path and every operation use them.
    One round trip, the locks taken in the order of the array."""
    keys = [f"{tenant_id}/{person_id}" for person_id in lock_order(persons)]
    await connection.execute(
        "SELECT count(pg_advisory_xact_lock(hashtext(key)))"
        " FROM (SELECT key FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n) ORDER BY n) AS ordered",
        keys,
    )


async def _record_tenant_sightings(
    connection: Connection, tenant_id: str, events: Sequence[FaceMatched], rules: VisitRules
) -> list[SightingOutcome]:
    """`VisitStore.record_sightings` for the events of one tenant, inside its transaction: a fixed number of
    statements whatever the batch's size (owners and locks, owners again with their kinds, the sightings, the
    neighbourhoods, the visits written back, the sites' zones, the rollups)."""
    owners, counted_kinds = await _owners_under_lock(connection, tenant_id, events)
    stored = [(event, owner) for event, owner in zip(events, owners, strict=True) if owner is not None]
    inserted = await _insert_sightings(connection, tenant_id, stored)
    new: dict[tuple[uuid.UUID, str], list[FaceMatched]] = defaultdict(list)
    for event, owner in stored:
        kind = counted_kinds.get(owner, event.person_kind.value)
        if event.event_id in inserted and kind == PersonKind.CUSTOMER.value:
            new[(owner, event.site_id)].append(event)
    holding = await _fold_new_sightings(connection, tenant_id, new, rules)
    outcomes = []
    for event, current in zip(events, owners, strict=True):
        if current is None:
            outcomes.append(SightingOutcome(None, VisitChanges()))
        elif event.event_id not in inserted:
            outcomes.append(await _holder_of(connection, event))
        else:
            outcomes.append(SightingOutcome(current, holding.get(event.event_id, VisitChanges())))
    return outcomes


_OWNERS = """
    SELECT e.n, CASE WHEN r.person_id IS NOT NULL THEN r.successor_id ELSE coalesce(c.person_id, e.person_id) END
               AS owner, e.person_id AS matched
    FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS e(source_event_id, person_id, n)
    LEFT JOIN claimed_sightings c ON c.source_event_id = e.source_event_id
    LEFT JOIN retired_persons r ON r.person_id = coalesce(c.person_id, e.person_id)
"""
"""For each event: the person a split gave the sighting to, else its matched person; then, if that person was
merged, the person it joined, or None if it was erased."""

_OWNERS_LOCKING = (
    "WITH owners AS MATERIALIZED ("
    + _OWNERS
    + """), persons AS (
        SELECT matched AS person_id FROM owners UNION SELECT owner FROM owners WHERE owner IS NOT NULL
    ), locks AS (
        SELECT count(CASE WHEN shared THEN pg_advisory_xact_lock_shared(hashtext(key))
                          ELSE pg_advisory_xact_lock(hashtext(key)) END) AS taken
        FROM (SELECT key, shared FROM (
                SELECT 0 AS part, row_number() OVER (ORDER BY person_id) AS n, $3 || '/' || person_id::text AS key,
                       false AS shared
                FROM persons
                UNION ALL SELECT 1, z.n, z.key, true FROM unnest($4::text[]) WITH ORDINALITY AS z(key, n)
              ) AS k ORDER BY part, n) AS ordered
    )
    SELECT o.n, o.owner FROM owners o CROSS JOIN locks ORDER BY o.n
"""
)
"""The owners as `_OWNERS` reads them, after locking every matched person and owner (exclusive, in the order of
`lock_order`: uuid order) and then the sites' zones (shared, in the order of `rollups.zone_lock_keys`), as the
lifecycle operations lock persons and then zones."""

_OWNERS_WITH_KINDS = (
    "SELECT o.n, o.owner, k.kind FROM (" + _OWNERS + ") AS o LEFT JOIN person_kinds k ON k.person_id = o.owner"
    " ORDER BY o.n"
)


async def _owners_under_lock(
    connection: Connection, tenant_id: str, events: Sequence[FaceMatched]
) -> tuple[list[uuid.UUID | None], dict[uuid.UUID, str]]:
    """The persons the sightings belong to now, with their matched persons and those persons locked (and the
    sites' zones, shared), and the kind an operator gave each owner that has one (it wins over the kind a
    sighting arrived with).

    Holding the locks keeps the answers true until commit: every operation that could change one locks one of
    them. The owners are read in the statement that takes the locks and again once they are held (a statement
    sees what was committed when it began); if an operation changed one meanwhile, the batch is retried
    (`OwnerChanged`)."""
    arrays = ([event.source_event_id for event in events], [event.person_id for event in events])
    sites = rollups.zone_lock_keys(tenant_id, {event.site_id for event in events})
    rows = await connection.fetch(_OWNERS_LOCKING, *arrays, tenant_id, sites)
    again = await connection.fetch(_OWNERS_WITH_KINDS, *arrays)
    owners = [row["owner"] for row in again]
    if [row["owner"] for row in rows] != owners:
        raise OwnerChanged("a person was merged, split or erased meanwhile")
    return owners, {row["owner"]: row["kind"] for row in again if row["kind"] is not None}


async def _insert_sightings(
    connection: Connection, tenant_id: str, stored: list[tuple[FaceMatched, uuid.UUID]]
) -> set[uuid.UUID]:
    """Insert the sightings not stored yet (by event id, or by source event id); the event ids inserted."""
    if not stored:
        return set()
    rows = await connection.fetch(
        "INSERT INTO sightings (tenant_id, event_id, source_event_id, site_id, camera_id, person_id, captured_at,"
        " person_kind)"
        " SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::uuid[], $7::timestamptz[],"
        " $8::text[]) ON CONFLICT DO NOTHING RETURNING event_id",
        tenant_id,
        [event.event_id for event, _ in stored],
        [event.source_event_id for event, _ in stored],
        [event.site_id for event, _ in stored],
        [event.camera_id for event, _ in stored],
        [owner for _, owner in stored],
        [event.captured_at for event, _ in stored],
        [event.person_kind.value for event, _ in stored],
    )
    return {row["event_id"] for row in rows}


async def _fold_new_sightings(
    connection: Connection,
    tenant_id: str,
    new: dict[tuple[uuid.UUID, str], list[FaceMatched]],
    rules: VisitRules,
) -> dict[uuid.UUID, VisitChanges]:
    """Refold the neighbourhood of each (person, site)'s new sightings; the changes to announce per event id."""
    if not new:
        return {}
    groups = list(new)
    bounds = [neighbourhood_bounds([_sighting(e) for e in new[group]], rules) for group in groups]
    hoods = await _neighbourhoods(connection, tenant_id, groups, bounds)
    replaced: list[Visit] = []
    refolded: list[PersonVisit] = []
    followers: list[PersonVisit] = []
    rolled_before: list[PersonVisit] = []
    rolled_after: list[PersonVisit] = []
    changes: dict[uuid.UUID, VisitChanges] = {}
    for (person_id, site_id), hood in zip(groups, hoods, strict=True):
        refold = refold_neighbourhood(hood, rules)
        before = [PersonVisit(site_id, person_id, v) for v in (*hood.between, *_present(hood.following))]
        after = [PersonVisit(site_id, person_id, v) for v in (*refold.visits, *_present(refold.following))]
        replaced.extend(hood.between)
        refolded.extend(after[: len(refold.visits)])
        if refold.following is not None and refold.following != hood.following:
            followers.append(PersonVisit(site_id, person_id, refold.following))
        rolled_before.extend(before)
        rolled_after.extend(after)
        diff = diff_visits(before, after)
        for position, event in enumerate(sorted(new[(person_id, site_id)], key=lambda e: (e.captured_at, e.event_id))):
            holder = tuple(p for p in after if p.visit.started_at <= event.captured_at <= p.visit.last_seen_at)
            extra = tuple(p for p in diff.changed if p not in holder) if position == 0 else ()
            changes[event.event_id] = VisitChanges(holder + extra, diff.removed if position == 0 else ())
    await _write_refolds(connection, tenant_id, replaced, refolded, followers)
    zones = await rollups.locked_site_zones(connection, tenant_id, sorted({site for _, site in groups}))
    await rollups.apply_visit_changes(connection, tenant_id, rolled_before, rolled_after, zones)
    return changes


def _present(visit: Visit | None) -> tuple[Visit, ...]:
    return () if visit is None else (visit,)


def _sighting(event: FaceMatched) -> Sighting:
    return Sighting(event.event_id, event.captured_at)


_NEIGHBOURHOODS = (
    """
    WITH g AS (
        SELECT * FROM unnest($2::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[]) WITH ORDINALITY
            AS g(person_id, site_id, lo, hi, n)
    ), edges AS MATERIALIZED (
        SELECT g.n, g.person_id, g.site_id,
               p.visit_id AS p_visit_id, p.started_at AS p_started_at, p.last_seen_at AS p_last_seen_at,
               p.sightings AS p_sightings, p.is_returning AS p_is_returning,
               f.visit_id AS f_visit_id, f.started_at AS f_started_at, f.last_seen_at AS f_last_seen_at,
               f.sightings AS f_sightings, f.is_returning AS f_is_returning
        FROM g
        LEFT JOIN LATERAL (
            SELECT * FROM visits v WHERE v.tenant_id = $1 AND v.site_id = g.site_id AND v.person_id = g.person_id
              AND NOT v.archived AND v.started_at <= g.lo AND v.last_seen_at <= g.lo
            ORDER BY v.started_at DESC LIMIT 1) p ON true
        LEFT JOIN LATERAL (
            SELECT * FROM visits v WHERE v.tenant_id = $1 AND v.site_id = g.site_id AND v.person_id = g.person_id
              AND NOT v.archived AND v.started_at >= g.hi
            ORDER BY v.started_at LIMIT 1) f ON true
    )
    SELECT 'p' AS part, n, p_visit_id AS id, p_started_at AS at, p_last_seen_at AS last_seen_at,
           p_sightings AS sightings, p_is_returning AS is_returning
    FROM edges WHERE p_visit_id IS NOT NULL
    UNION ALL
    SELECT 'f', n, f_visit_id, f_started_at, f_last_seen_at, f_sightings, f_is_returning
    FROM edges WHERE f_visit_id IS NOT NULL
    UNION ALL
    SELECT 'v', e.n, v.visit_id, v.started_at, v.last_seen_at, v.sightings, v.is_returning
    FROM edges e CROSS JOIN LATERAL (
        SELECT * FROM visits v WHERE v.tenant_id = $1 AND v.site_id = e.site_id AND v.person_id = e.person_id
          AND NOT v.archived AND v.started_at > coalesce(e.p_last_seen_at, '-infinity')
          AND v.started_at < coalesce(e.f_started_at, 'infinity')
        OFFSET 0) v  -- a fence: index lookups per group, whatever the statistics say
    UNION ALL
    SELECT 's', e.n, s.event_id, s.captured_at, NULL, NULL, NULL
    FROM edges e CROSS JOIN LATERAL (
        SELECT * FROM sightings s WHERE s.tenant_id = $1 AND s.site_id = e.site_id AND s.person_id = e.person_id
          AND s.captured_at > coalesce(e.p_last_seen_at, '-infinity')
          AND s.captured_at < coalesce(e.f_started_at, 'infinity')
        OFFSET 0) s
    LEFT JOIN person_kinds k ON k.tenant_id = s.tenant_id AND k.person_id = s.person_id
    WHERE """
    + _COUNTS_AS_CUSTOMER
    + """
    ORDER BY n, part, at
"""
)
"""Per (person, site, lo, hi), in one round trip: the visit before the neighbourhood (`p`: visits of a person at
a site never overlap, so the latest to start before `lo` that also ended by then), the one after it (`f`), the
visits in between (`v`) and the sightings in between that make visits (`s`)."""


async def _neighbourhoods(
    connection: Connection,
    tenant_id: str,
    groups: list[tuple[uuid.UUID, str]],
    bounds: list[tuple[datetime, datetime]],
) -> list[Neighbourhood]:
    """Read each group's `Neighbourhood`, all of them in one statement."""
    rows = await connection.fetch(
        _NEIGHBOURHOODS,
        tenant_id,
        [p for p, _ in groups],
        [s for _, s in groups],
        [lo for lo, _ in bounds],
        [hi for _, hi in bounds],
    )
    previous: dict[int, Visit] = {}
    following: dict[int, Visit] = {}
    between: dict[int, list[Visit]] = defaultdict(list)
    sightings: dict[int, list[Sighting]] = defaultdict(list)
    for part, n, id_, at, last_seen_at, count, is_returning in rows:
        if part == "s":
            sightings[n].append(Sighting(id_, at))
            continue
        visit = Visit(id_, at, last_seen_at, count, is_returning)
        if part == "v":
            between[n].append(visit)
        elif part == "p":
            previous[n] = visit
        else:
            following[n] = visit
    return [
        Neighbourhood(previous.get(n), tuple(between[n]), tuple(sightings[n]), following.get(n))
        for n in range(1, len(groups) + 1)
    ]


_WRITE_REFOLDS = """
    WITH gone AS (
        DELETE FROM visits v USING unnest($9::uuid[], $10::timestamptz[]) AS r(visit_id, started_at)
        WHERE v.visit_id = r.visit_id AND v.started_at = r.started_at AND NOT v.archived
    ), followed AS (
        UPDATE visits v SET is_returning = f.is_returning, updated_at = now()
        FROM unnest($11::uuid[], $12::timestamptz[], $13::boolean[]) AS f(visit_id, started_at, is_returning)
        WHERE v.visit_id = f.visit_id AND v.started_at = f.started_at
    )
    INSERT INTO visits AS v (tenant_id, visit_id, site_id, person_id, started_at, last_seen_at, sightings,
                             is_returning)
    SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::timestamptz[], $6::timestamptz[], $7::int[],
                             $8::boolean[])
    ON CONFLICT (tenant_id, visit_id, started_at) DO UPDATE SET site_id = EXCLUDED.site_id,
        person_id = EXCLUDED.person_id, last_seen_at = EXCLUDED.last_seen_at, sightings = EXCLUDED.sightings,
        is_returning = EXCLUDED.is_returning, updated_at = now()
        WHERE NOT v.archived
    RETURNING v.visit_id
"""
"""The neighbourhoods' visits written back in one statement: the old ones that are gone deleted, the new ones
inserted or, when a visit keeps its id (the same first sighting), updated in place (its indexed columns do not
change, so no index entry is added), and the followers' `is_returning` updated. The three touch different rows."""


async def _write_refolds(
    connection: Connection,
    tenant_id: str,
    replaced: list[Visit],
    refolded: list[PersonVisit],
    followers: list[PersonVisit],
) -> None:
    """Replace the neighbourhoods' old visits by their new ones, and update the followers that changed. A
    refolded visit that would take the place of an archived one (retention took its sightings) is refused, as
    the insert of a duplicate visit was: the batch fails and is retried, never counted twice."""
    kept = {(p.visit.visit_id, p.visit.started_at) for p in refolded}
    gone = [v for v in replaced if (v.visit_id, v.started_at) not in kept]
    written = await connection.fetch(
        _WRITE_REFOLDS,
        tenant_id,
        *_visit_columns(refolded),
        [v.visit_id for v in gone],
        [v.started_at for v in gone],
        [p.visit.visit_id for p in followers],
        [p.visit.started_at for p in followers],
        [p.visit.is_returning for p in followers],
    )
    if len(written) != len(refolded):
        raise VisitArchived(f"{len(refolded) - len(written)} refolded visit(s) would replace archived ones")


async def _insert_visits(connection: Connection, tenant_id: str, visits: list[PersonVisit]) -> None:
    await connection.execute(
        "INSERT INTO visits (tenant_id, visit_id, site_id, person_id, started_at, last_seen_at, sightings,"
        " is_returning)"
        " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::timestamptz[], $6::timestamptz[],"
        " $7::int[], $8::boolean[])",
        tenant_id,
        *_visit_columns(visits),
    )


def _visit_columns(visits: list[PersonVisit]) -> tuple[list[Any], ...]:
    """The visits as one array per column (visit_id, site_id, person_id, started_at, last_seen_at, sightings,
    is_returning), for statements that read them with unnest."""
    return (
        [p.visit.visit_id for p in visits],
        [p.site_id for p in visits],
        [p.person_id for p in visits],
        [p.visit.started_at for p in visits],
        [p.visit.last_seen_at for p in visits],
        [p.visit.sightings for p in visits],
        [p.visit.is_returning for p in visits],
    )


async def _retire(
    connection: Connection,
    tenant_id: str,
    persons: list[uuid.UUID],
    successor_id: uuid.UUID | None,
    operation_id: uuid.UUID,
) -> None:
    """Retire `persons` into `successor_id` (None: erased); persons retired into them follow, so a late
    sighting is resolved in one step however many merges happened."""
    await connection.executemany(
        "INSERT INTO retired_persons (tenant_id, person_id, successor_id, operation_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant_id, person_id) DO UPDATE"
        " SET successor_id = EXCLUDED.successor_id, operation_id = EXCLUDED.operation_id, retired_at = now()",
        [(tenant_id, person_id, successor_id, operation_id) for person_id in persons],
    )
    await connection.execute(
        "UPDATE retired_persons SET successor_id = $1, operation_id = $2 WHERE successor_id = ANY($3::uuid[])",
        successor_id,
        operation_id,
        persons,
    )


async def _stored_outcome(connection: Connection, operation_id: uuid.UUID) -> OperationOutcome | None:
    row = await connection.fetchrow(
        "SELECT kind, person_id, outcome::text AS outcome, completed_at FROM lifecycle_operations"
        " WHERE operation_id = $1",
        operation_id,
    )
    if row is None:
        return None
    return outcome_from_json(operation_id, row["kind"], row["person_id"], row["outcome"], row["completed_at"])


async def _holder_of(connection: Connection, event: FaceMatched) -> SightingOutcome:
    """For a sighting already stored: its owner now and the visit that holds it (it may have moved since); none
    for a sighting that does not count (a staff member's), whose first delivery announced nothing either."""
    row = await connection.fetchrow(
        "SELECT s.person_id, s.site_id, s.captured_at, " + _COUNTS_AS_CUSTOMER + " AS counted"
        " FROM sightings s LEFT JOIN person_kinds k USING (tenant_id, person_id)"
        " WHERE s.event_id = $1 OR s.source_event_id = $2",
        event.event_id,
        event.source_event_id,
    )
    if row is None:
        return SightingOutcome(None, VisitChanges())
    if not row["counted"]:
        return SightingOutcome(row["person_id"], VisitChanges())
    visits = await _visits_of(connection, [row["person_id"]], row["site_id"])
    holding = tuple(v for v in visits if v.visit.started_at <= row["captured_at"] <= v.visit.last_seen_at)
    return SightingOutcome(row["person_id"], VisitChanges(changed=holding))


async def _sightings_of(
    connection: Connection, persons: list[uuid.UUID], site_id: str | None = None
) -> list[PersonSighting]:
    """The sightings of `persons` that make visits: those of customers (staff are stored, never visitors)."""
    rows = await connection.fetch(
        "SELECT s.site_id, s.person_id, s.event_id, s.captured_at"
        " FROM sightings s LEFT JOIN person_kinds k USING (tenant_id, person_id)"
        " WHERE s.person_id = ANY($1::uuid[]) AND ($2::text IS NULL OR s.site_id = $2) AND " + _COUNTS_AS_CUSTOMER,
        persons,
        site_id,
    )
    return [PersonSighting(r["site_id"], r["person_id"], Sighting(r["event_id"], r["captured_at"])) for r in rows]


async def _rollups_dropped_before(connection: Connection) -> datetime:
    """Visits before this had their rollup contributions taken out already (their partitions were dropped)."""
    before: datetime | None = await connection.fetchval("SELECT before FROM rollups_dropped_before")
    return before or datetime.min.replace(tzinfo=UTC)


async def _archived_visits_of(connection: Connection, persons: list[uuid.UUID]) -> list[PersonVisit]:
    rows = await connection.fetch(
        "SELECT site_id, person_id, visit_id, started_at, last_seen_at, sightings, is_returning FROM visits"
        " WHERE person_id = ANY($1::uuid[]) AND archived",
        persons,
    )
    return [PersonVisit(row["site_id"], row["person_id"], _visit(row)) for row in rows]


async def _visits_of(connection: Connection, persons: list[uuid.UUID], site_id: str | None = None) -> list[PersonVisit]:
    rows = await connection.fetch(
        "SELECT site_id, person_id, visit_id, started_at, last_seen_at, sightings, is_returning FROM visits"
        " WHERE person_id = ANY($1::uuid[]) AND ($2::text IS NULL OR site_id = $2) AND NOT archived"
        " ORDER BY site_id, person_id, started_at",
        persons,
        site_id,
    )
    return [PersonVisit(row["site_id"], row["person_id"], _visit(row)) for row in rows]


async def _replace_visits(
    connection: Connection,
    tenant_id: str,
    persons: list[uuid.UUID],
    visits: list[PersonVisit],
    site_id: str | None = None,
) -> None:
    """Make the stored visits of `persons` (at `site_id`, or everywhere) exactly `visits`, archived ones aside
    (retention deleted their sightings, so `visits` cannot hold them).

    Deleting first matters: a visit id can move to another person (its first sighting did)."""
    await connection.execute(
        "DELETE FROM visits WHERE person_id = ANY($1::uuid[]) AND ($2::text IS NULL OR site_id = $2) AND NOT archived",
        persons,
        site_id,
    )
    await _insert_visits(connection, tenant_id, visits)


def _row_count(status: str) -> int:
    """The row count of an asyncpg command status such as `UPDATE 3`."""
    return int(status.rsplit(" ", 1)[-1])


def _visit(row: asyncpg.Record) -> Visit:
    return Visit(row["visit_id"], row["started_at"], row["last_seen_at"], row["sightings"], row["is_returning"])


def _whole_months(first_day: date, end_day: date) -> list[date]:
    """The local months `first_day` up to `end_day` covers exactly; none if it starts or ends within a month."""
    if first_day.day != 1 or end_day.day != 1:
        return []
    months, month = [], first_day
    while month < end_day:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def _local_days(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[date, date] | None:
    """[start, end) as the site's local dates [first, end) when both are local midnights in `zone`; else None."""
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    if _local_midnight(first, zone) != start or _local_midnight(last, zone) != end or last <= first:
        return None
    return first, last


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant `day` starts in `zone`, as Postgres' `date_trunc('day', ..., zone)` gives it."""
    return datetime.combine(day, time.min, zone).astimezone(UTC)


async def _rolled_site_report(
    connection: Connection,
    tenant_id: str,
    site_id: str,
    start: datetime,
    end: datetime,
    first_day: date,
    end_day: date,
    zone: ZoneInfo,
) -> tuple[list[ReportRow], ReportRow]:
    """`VisitStore.visitor_report` by whole local days, from the site-day rollups and unidentified sightings."""
    await rollups.reconcile_zones(connection, tenant_id, {site_id: zone})
    days = await rollups.site_days(connection, site_id, first_day, end_day)
    together = await rollups.site_range(connection, site_id, first_day, end_day, _whole_months(first_day, end_day))
    rows = await connection.fetch(
        "SELECT (captured_at AT TIME ZONE $4)::date AS day, count(*) AS sightings FROM unidentified_sightings"
        " WHERE site_id = $1 AND captured_at >= $2 AND captured_at < $3 GROUP BY 1",
        site_id,
        start,
        end,
        zone.key,
    )
    unidentified = {row["day"]: row["sightings"] for row in rows}
    periods = [
        ReportRow(
            **_summary_counts(days.get(day), unidentified.get(day, 0)),
            period_start=_local_midnight(day, zone).astimezone(zone),
        )
        for day in sorted(set(days) | set(unidentified))
    ]
    total = ReportRow(**_summary_counts(together, sum(unidentified.values())), period_start=start.astimezone(zone))
    return periods, total


def _summary_counts(summary: rollups.Summary | None, unidentified: int) -> dict[str, Any]:
    """Counts of a key (or range) of a site level of the rollups; zeros for none."""
    if summary is None or summary.visits == 0:
        return _counts_from(0, 0, 0, 0, 0, 0.0, {}, unidentified)
    return {
        "visits": summary.visits,
        "unique_visitors": summary.unique_visitors,
        "new_visitors": summary.new_visitors,
        "returning_visitors": summary.returning_visitors,
        "returning_visits": summary.returning_visits,
        "unidentified_sightings": unidentified,
        "dwell_seconds_avg": summary.dwell_seconds / summary.visits,
        "dwell_seconds_median": summary.dwell_seconds_median,
        "dwell_distribution": summary.dwell_distribution,
    }


def _rolled_counts(rolled: rollups.RolledUp | None, unidentified: int) -> dict[str, Any]:
    if rolled is None or rolled.visits == 0:
        return _counts_from(0, 0, 0, 0, 0, 0.0, {}, unidentified)
    return _counts_from(
        rolled.visits,
        rolled.unique_visitors,
        rolled.new_visitors,
        rolled.returning_visitors,
        rolled.returning_visits,
        rolled.dwell_seconds,
        rolled.dwell_minutes,
        unidentified,
    )


def _rolled_total(days: list[rollups.RolledUp], visitors: tuple[int, int, int], unidentified: int) -> Counts:
    minutes: dict[int, int] = defaultdict(int)
    for day in days:
        for minute, visits in day.dwell_minutes.items():
            minutes[minute] += visits
    values = _counts_from(
        sum(d.visits for d in days),
        *visitors,
        sum(d.returning_visits for d in days),
        sum(d.dwell_seconds for d in days),
        minutes,
        unidentified,
    )
    return Counts(**values)


def _counts_from(
    visits: int,
    unique_visitors: int,
    new_visitors: int,
    returning_visitors: int,
    returning_visits: int,
    dwell_seconds: float,
    dwell_minutes: Mapping[int, int],
    unidentified: int,
) -> dict[str, Any]:
    median, distribution = dwell_from_minutes(dwell_minutes)
    return {
        "visits": visits,
        "unique_visitors": unique_visitors,
        "new_visitors": new_visitors,
        "returning_visitors": returning_visitors,
        "returning_visits": returning_visits,
        "unidentified_sightings": unidentified,
        "dwell_seconds_avg": dwell_seconds / visits if visits else None,
        "dwell_seconds_median": median,
        "dwell_distribution": distribution,
    }


async def _unidentified_by(
    connection: Connection,
    key: Literal["day", "site_id"],
    first_day: date,
    end_day: date,
    zones: Mapping[str, ZoneInfo],
) -> dict[Any, int]:
    """Unidentified sightings per local date or per site over the sites of `zones`."""
    _, _, first, end, *_ = _tenant_params(first_day, end_day, zones)
    rows = await connection.fetch(
        f"SELECT {key} AS key, count(*) AS sightings"
        " FROM (SELECT u.site_id, (u.captured_at AT TIME ZONE z.zone)::date AS day"
        "       FROM unidentified_sightings u"
        "       JOIN unnest($1::text[], $2::text[]) AS z(site_id, zone) ON z.site_id = u.site_id"
        "       WHERE u.captured_at >= $3 AND u.captured_at < $4) u"
        " WHERE day >= $5 AND day < $6 GROUP BY 1",
        list(zones),
        [zone.key for zone in zones.values()],
        first,
        end,
        first_day,
        end_day,
    )
    return {row["key"]: row["sightings"] for row in rows}


def _counts_of(row: asyncpg.Record, *leave_out: str) -> dict[str, Any]:
    values = {key: value for key, value in row.items() if key not in leave_out}
    values["dwell_distribution"] = tuple(values["dwell_distribution"])
    return values


def _tenant_params(first_day: date, end_day: date, zones: Mapping[str, ZoneInfo]) -> list[Any]:
    """The sites and their zones, the UTC instants that hold every zone's local dates, the dates."""
    first = datetime.combine(first_day, time.min, UTC) - ZONE_REACH
    end = datetime.combine(end_day, time.min, UTC) + ZONE_REACH
    return [list(zones), [zone.key for zone in zones.values()], first, end, first_day, end_day]


ZONE_REACH = timedelta(hours=14)
"""No zone is further from UTC (Kiribati's +14, Baker Island's -12): local dates are within this of UTC's."""


def _tenant_query(key: str, group: str) -> str:
    return _TENANT_QUERY.format(key=key, group=group)


_TENANT_QUERY = (
    """
    WITH zones AS (SELECT * FROM unnest($1::text[], $2::text[]) AS z(site_id, zone)),
    located AS (
        SELECT v.site_id, v.person_id, v.is_returning, (v.started_at AT TIME ZONE z.zone)::date AS day,
               extract(epoch FROM v.last_seen_at - v.started_at)::float8 AS dwell
        FROM visits v JOIN zones z ON z.site_id = v.site_id
        WHERE v.started_at >= $3 AND v.started_at < $4
    ), visit_counts AS (
        SELECT {key} AS key, """
    + _VISIT_FIGURES
    + """
        FROM located WHERE day >= $5 AND day < $6
        {group}
    ), unidentified_counts AS (
        SELECT {key} AS key, count(*) AS unidentified_sightings
        FROM (SELECT u.site_id, (u.captured_at AT TIME ZONE z.zone)::date AS day
              FROM unidentified_sightings u JOIN zones z ON z.site_id = u.site_id
              WHERE u.captured_at >= $3 AND u.captured_at < $4) u
        WHERE day >= $5 AND day < $6
        {group}
    )
    SELECT coalesce(v.key, u.key) AS key, """
    + _FIGURES_OR_ZEROS
    + """
    FROM visit_counts v FULL JOIN unidentified_counts u ON u.key = v.key
    ORDER BY 1
"""
)
"""A tenant's report over the sites of `zones`: by local date (`{key}` = day), by site, or the whole range."""


def _report_row(row: asyncpg.Record, zone: ZoneInfo) -> ReportRow:
    values = dict(row)
    values["period_start"] = values["period_start"].astimezone(zone)
    values["dwell_distribution"] = tuple(values["dwell_distribution"])
    return ReportRow(**values)
