"""The `identity` schema: the person directory and each person's sightings."""

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from schemas import FaceMatched, PersonKind
from services.common.postgres import Connection, tenant_transaction
from services.identity.domain.lifecycle import PageCursor

SCHEMA = "identity"
ROLE = "revisit_identity"


PERSON_COLUMNS = (
    "p.person_id, p.kind, p.first_site_id, p.first_seen_at, p.last_seen_at, p.created_by_event, p.sightings"
)


@dataclass(frozen=True)
class Person:
    person_id: uuid.UUID
    kind: PersonKind
    first_site_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    created_by_event: uuid.UUID
    sightings: int


@dataclass(frozen=True)
class PersonSummary:
    person: Person
    thumbnail_key: str | None


@dataclass(frozen=True)
class StaffSuggestion:
    person_id: uuid.UUID
    days_seen: int
    working_days: int
    median_hours: float


@dataclass(frozen=True)
class SightingRow:
    sighting_id: uuid.UUID
    captured_at: datetime
    site_id: str
    camera_id: str
    similarity: float | None
    crop_key: str | None


class PersonDirectory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record_sighting(self, event: FaceMatched) -> Person | None:
        """Record the sighting and create its person on its first sighting, else widen its first/last seen.

        A sighting of a person a merge retired is recorded under the person it was merged into; one of an
        erased person is dropped (None): it was in flight when the erasure ran. A redelivered sighting
        changes nothing and returns the person as it is."""
        async with tenant_transaction(self._pool, event.tenant_id) as connection:
            person_id = await _current_person(connection, event.person_id)
            if person_id is None:
                return None
            inserted = await connection.fetchval(
                "INSERT INTO sightings (tenant_id, sighting_id, person_id, site_id, camera_id, captured_at,"
                " similarity, crop_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT DO NOTHING RETURNING sighting_id",
                event.tenant_id,
                event.source_event_id,
                person_id,
                event.site_id,
                event.camera_id,
                event.captured_at,
                event.similarity,
                event.crop_key,
            )
            row = await connection.fetchrow(
                """
                INSERT INTO persons (tenant_id, person_id, kind, first_site_id, first_seen_at, last_seen_at,
                                     created_by_event, sightings)
                VALUES ($1, $2, $3, $4, $5, $5, $6, $7)
                ON CONFLICT (tenant_id, person_id) DO UPDATE
                  SET first_seen_at = LEAST(persons.first_seen_at, EXCLUDED.first_seen_at),
                      last_seen_at = GREATEST(persons.last_seen_at, EXCLUDED.last_seen_at),
                      sightings = persons.sightings + EXCLUDED.sightings
                RETURNING person_id, kind, first_site_id, first_seen_at, last_seen_at, created_by_event, sightings
                """,
                event.tenant_id,
                person_id,
                event.person_kind.value,
                event.site_id,
                event.captured_at,
                event.event_id,
                0 if inserted is None else 1,
            )
        assert row is not None
        return _person(row)

    async def list_persons(self, tenant_id: str, limit: int, after: PageCursor | None = None) -> list[PersonSummary]:
        """A page of the tenant's persons, most recently seen first, each with its first crop as thumbnail."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                f"""
                SELECT {PERSON_COLUMNS},
                       (SELECT crop_key FROM sightings s WHERE s.person_id = p.person_id AND s.crop_key IS NOT NULL
                        ORDER BY captured_at LIMIT 1) AS thumbnail_key
                FROM persons p
                WHERE $2::timestamptz IS NULL OR (p.last_seen_at, p.person_id) < ($2, $3)
                ORDER BY p.last_seen_at DESC, p.person_id DESC LIMIT $1
                """,
                limit,
                None if after is None else after.at,
                None if after is None else after.item_id,
            )
        return [PersonSummary(_person(row), row["thumbnail_key"]) for row in rows]

    async def get_person(self, tenant_id: str, person_id: uuid.UUID) -> Person | None:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            row = await connection.fetchrow(f"SELECT {PERSON_COLUMNS} FROM persons p WHERE person_id = $1", person_id)
        return None if row is None else _person(row)

    async def list_sightings(
        self, tenant_id: str, person_id: uuid.UUID, limit: int, after: PageCursor | None = None
    ) -> list[SightingRow]:
        """A page of a person's sightings, newest first."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                """
                SELECT sighting_id, captured_at, site_id, camera_id, similarity, crop_key FROM sightings
                WHERE person_id = $1 AND ($3::timestamptz IS NULL OR (captured_at, sighting_id) < ($3, $4))
                ORDER BY captured_at DESC, sighting_id DESC LIMIT $2
                """,
                person_id,
                limit,
                None if after is None else after.at,
                None if after is None else after.item_id,
            )
        return [SightingRow(**dict(row)) for row in rows]

    async def staff_suggestions(
        self, tenant_id: str, until: datetime, days: int, min_share: float, min_hours: float, limit: int
    ) -> list[StaffSuggestion]:
        """Customers seen on most of the tenant's working days in the window, for hours each day: staff the
        edges did not recognise. A working day is a UTC day on which the tenant saw anyone; a person's
        hours on a day run from its first to its last sighting."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                """
                WITH window_sightings AS (
                    SELECT s.person_id, date_trunc('day', s.captured_at, 'UTC') AS day, s.captured_at
                    FROM sightings s JOIN persons p USING (tenant_id, person_id)
                    WHERE p.kind = 'customer' AND s.captured_at < $1::timestamptz
                      AND s.captured_at >= $1::timestamptz - make_interval(days => $2)
                ), working AS (
                    SELECT count(DISTINCT day) AS days FROM window_sightings
                ), per_day AS (
                    SELECT person_id, day, extract(epoch FROM max(captured_at) - min(captured_at)) / 3600 AS hours
                    FROM window_sightings GROUP BY person_id, day
                )
                SELECT person_id, count(*) AS days_seen, (SELECT days FROM working) AS working_days,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS median_hours
                FROM per_day GROUP BY person_id
                HAVING count(*) >= $3 * (SELECT days FROM working)
                   AND percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) >= $4
                ORDER BY days_seen DESC, median_hours DESC LIMIT $5
                """,
                until,
                days,
                min_share,
                min_hours,
                limit,
            )
        return [
            StaffSuggestion(r["person_id"], r["days_seen"], r["working_days"], float(r["median_hours"])) for r in rows
        ]

    async def delete_sightings_before(self, tenant_id: str, before: datetime) -> int:
        """Retention: delete the tenant's sightings (crop keys, similarity) captured before `before` and lower
        their persons' sighting counts in the same statement. The persons stay (first and last seen are
        facts about them, not sightings). A repeat deletes nothing."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            deleted: int = await connection.fetchval(
                """
                WITH gone AS (DELETE FROM sightings WHERE captured_at < $1 RETURNING person_id),
                per_person AS (SELECT person_id, count(*) AS n FROM gone GROUP BY person_id),
                counted AS (
                  UPDATE persons p SET sightings = greatest(p.sightings - per_person.n, 0)
                  FROM per_person WHERE p.person_id = per_person.person_id RETURNING 1
                )
                SELECT count(*) FROM gone
                """,
                before,
            )
        return deleted

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")


def _person(row: asyncpg.Record) -> Person:
    return Person(
        row["person_id"],
        PersonKind(row["kind"]),
        row["first_site_id"],
        row["first_seen_at"],
        row["last_seen_at"],
        row["created_by_event"],
        row["sightings"],
    )


async def _current_person(connection: Connection, person_id: uuid.UUID) -> uuid.UUID | None:
    """The person a sighting of `person_id` belongs to now: itself, the person a merge joined it to, or
    None if it was erased (merges can chain: A into B, then B into C)."""
    for _ in range(100):
        row = await connection.fetchrow("SELECT merged_into FROM retired_persons WHERE person_id = $1", person_id)
        if row is None:
            return person_id
        if row["merged_into"] is None:
            return None
        person_id = row["merged_into"]
    raise RuntimeError(f"merge chain of {person_id} does not end")
