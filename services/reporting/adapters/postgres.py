"""The `reporting` schema: sightings, the visits derived from them, unidentified sightings, persons merged or
erased (retired), the kinds operators gave persons, the lifecycle operations done, and the report queries.

A sighting counts towards visits when its person is a customer: the kind an operator last gave the person
(`person_kinds`, from `PersonKindChanged`), else the kind the sighting arrived with. The operator's mark wins,
so a staff sighting of a person marked customer counts, and a customer sighting of one marked staff does not."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

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
from services.reporting.domain.lifecycle import (
    OperationKind,
    OperationOutcome,
    lock_order,
    outcome_from_json,
    outcome_to_json,
)
from services.reporting.domain.visits import (
    PersonSighting,
    PersonVisit,
    Sighting,
    Visit,
    VisitChanges,
    VisitRules,
    diff_visits,
    visits_of_sightings,
)

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


_COUNTS_AS_CUSTOMER = "coalesce(k.kind, s.person_kind) = 'customer'"
"""SQL on `sightings s LEFT JOIN person_kinds k`: the operator's mark of the person wins over the sighting's kind."""


class OwnerChanged(RuntimeError):
    """A person was merged or erased between reading its owner and locking it: retry the sighting."""


@dataclass(frozen=True)
class SightingOutcome:
    """Who a sighting was recorded under (None: the person was erased, so it was dropped) and what changed."""

    owner: uuid.UUID | None
    visits: VisitChanges


class VisitStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def record_sighting(self, event: FaceMatched, rules: VisitRules) -> SightingOutcome:
        """Store the sighting (staff too, with the kind it arrived with) under its person and recompute that
        person's visits at the site, under the person's lock.

        A sighting a split claimed is recorded under the person it was split to; one of a merged person
        under the person it was merged into; one of an erased person is not stored (owner None). For a
        sighting already stored, the changes are the visit that holds it, so a crash between commit and
        publish is repaired by the redelivery."""
        async with tenant_transaction(self._pool, event.tenant_id) as connection:
            owner = await _owner_under_lock(connection, event)
            if owner is None:
                return SightingOutcome(None, VisitChanges())
            inserted = await connection.fetchval(
                "INSERT INTO sightings (tenant_id, event_id, source_event_id, site_id, camera_id, person_id,"
                " captured_at, person_kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT DO NOTHING RETURNING event_id",
                event.tenant_id,
                event.event_id,
                event.source_event_id,
                event.site_id,
                event.camera_id,
                owner,
                event.captured_at,
                event.person_kind.value,
            )
            if inserted is None:
                return await _holder_of(connection, event)
            before = await _visits_of(connection, [owner], event.site_id)
            after = visits_of_sightings(await _sightings_of(connection, [owner], event.site_id), rules)
            await _replace_visits(connection, event.tenant_id, [owner], after, event.site_id)
        return SightingOutcome(owner, diff_visits(before, after))

    async def merge_persons(self, event: PersonsMerged, rules: VisitRules) -> OperationOutcome:
        """Move the sightings of `merged_person_ids` to `person_id`, retire the merged persons (their late
        sightings go to `person_id`), and recompute the visits of all of them, in one transaction."""
        target, merged = event.person_id, list(event.merged_person_ids)

        async def change(connection: Connection) -> int:
            moved = await connection.execute(
                "UPDATE sightings SET person_id = $1 WHERE person_id = ANY($2::uuid[])", target, merged
            )
            await connection.execute(  # archived visits have no sightings left to recompute them from
                "UPDATE visits SET person_id = $1 WHERE person_id = ANY($2::uuid[]) AND archived", target, merged
            )
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
            await connection.execute("DELETE FROM visits WHERE person_id = $1 AND archived", event.person_id)
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
            visits = await connection.execute("DELETE FROM visits WHERE archived AND started_at < $1", visits_before)
        return _row_count(unidentified), _row_count(visits)

    async def visitor_report(
        self,
        tenant_id: str,
        site_id: str,
        start: datetime,
        end: datetime,
        granularity: Granularity,
        time_zone: str = "UTC",
    ) -> tuple[list[ReportRow], ReportRow]:
        """Per-period counts and the totals of the whole range (distinct persons across it, not a sum); periods
        are the days or hours of `time_zone` (the site's IANA zone).

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
            visit_period="date_trunc($4, started_at, $5)",
            unidentified_period="date_trunc($4, captured_at, $5)",
            group="GROUP BY 1",
        )
        whole_range = query.format(visit_period="$2::timestamptz", unidentified_period="$2::timestamptz", group="")
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(per_period, site_id, start, end, granularity, time_zone)
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


async def _lock_persons(connection: Connection, tenant_id: str, persons: list[uuid.UUID]) -> None:
    """Per-person transaction locks, in one global order: the sighting path and every operation use them."""
    for person_id in lock_order(persons):
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{tenant_id}/{person_id}")


async def _owner(connection: Connection, event: FaceMatched) -> uuid.UUID | None:
    """The person a split gave the sighting to, else its matched person; then, if that person was merged,
    the person it joined, or None if it was erased."""
    claimed = await connection.fetchval(
        "SELECT person_id FROM claimed_sightings WHERE source_event_id = $1", event.source_event_id
    )
    person_id: uuid.UUID = claimed or event.person_id
    row = await connection.fetchrow("SELECT successor_id FROM retired_persons WHERE person_id = $1", person_id)
    return person_id if row is None else row["successor_id"]


async def _owner_under_lock(connection: Connection, event: FaceMatched) -> uuid.UUID | None:
    """The person the sighting belongs to now, with its matched person and that person locked.

    Holding both locks keeps the answer true until commit: every operation that could change it locks
    one of them. If an operation changed it between the read and the locks, the sighting is retried."""
    owner = await _owner(connection, event)
    persons = [event.person_id] if owner is None else [event.person_id, owner]
    await _lock_persons(connection, event.tenant_id, persons)
    if await _owner(connection, event) != owner:
        raise OwnerChanged(f"person {event.person_id} was merged, split or erased meanwhile")
    return owner


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
    await connection.executemany(
        "INSERT INTO visits (tenant_id, visit_id, site_id, person_id, started_at, last_seen_at, sightings,"
        " is_returning) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                tenant_id,
                p.visit.visit_id,
                p.site_id,
                p.person_id,
                p.visit.started_at,
                p.visit.last_seen_at,
                p.visit.sightings,
                p.visit.is_returning,
            )
            for p in visits
        ],
    )


def _row_count(status: str) -> int:
    """The row count of an asyncpg command status such as `UPDATE 3`."""
    return int(status.rsplit(" ", 1)[-1])


def _visit(row: asyncpg.Record) -> Visit:
    return Visit(row["visit_id"], row["started_at"], row["last_seen_at"], row["sightings"], row["is_returning"])


def _report_row(row: asyncpg.Record) -> ReportRow:
    return ReportRow(**dict(row))
