"""The `identity` schema: the person directory and each person's sightings."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
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
        """One sighting: see `record_sightings`."""
        return (await self.record_sightings([event]))[0]

    async def record_sightings(self, events: Sequence[FaceMatched]) -> list[Person | None]:
        """Record the sightings and create each person on its first sighting, else widen its first/last seen: per
        tenant one transaction of three set-based statements, whatever the number of sightings. Returns, for each
        event, its person after the write.

        A sighting of a person a merge retired is recorded under the person it was merged into; one of an erased
        person is dropped (None): it was in flight when the erasure ran. A redelivered sighting (or the same one
        twice in `events`) changes nothing and returns the person as it is. A person first seen in `events` is
        created by its earliest sighting there (its site, kind and event id)."""
        persons: dict[uuid.UUID, Person | None] = {}
        for tenant_id, of_tenant in _by_tenant(events).items():
            async with tenant_transaction(self._pool, tenant_id) as connection:
                persons |= await _record_tenant_sightings(connection, tenant_id, of_tenant)
        return [persons[event.event_id] for event in events]

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


def _by_tenant(events: Sequence[FaceMatched]) -> dict[str, list[FaceMatched]]:
    grouped: dict[str, list[FaceMatched]] = defaultdict(list)
    for event in events:
        grouped[event.tenant_id].append(event)
    return grouped


async def _record_tenant_sightings(
    connection: Connection, tenant_id: str, events: Sequence[FaceMatched]
) -> dict[uuid.UUID, Person | None]:
    """`record_sightings` for one tenant, inside its transaction; keyed by event id."""
    owners = await _current_persons(connection, {event.person_id for event in events})
    kept = [(event, owner) for event in events if (owner := owners[event.person_id]) is not None]
    dropped: dict[uuid.UUID, Person | None] = {
        event.event_id: None for event in events if owners[event.person_id] is None
    }
    if not kept:
        return dropped
    inserted = await _insert_sightings(connection, tenant_id, kept)
    changes = [_person_change(owner, group, inserted) for owner, group in _by_owner(kept).items()]
    rows = await connection.fetch(
        """
        INSERT INTO persons (tenant_id, person_id, kind, first_site_id, first_seen_at, last_seen_at, created_by_event,
                             sightings)
        SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::uuid[],
                                 $8::int[])
        ON CONFLICT (tenant_id, person_id) DO UPDATE
          SET first_seen_at = LEAST(persons.first_seen_at, EXCLUDED.first_seen_at),
              last_seen_at = GREATEST(persons.last_seen_at, EXCLUDED.last_seen_at),
              sightings = persons.sightings + EXCLUDED.sightings
        RETURNING person_id, kind, first_site_id, first_seen_at, last_seen_at, created_by_event, sightings
        """,
        tenant_id,
        *(list(column) for column in zip(*changes, strict=True)),
    )
    by_id = {row["person_id"]: _person(row) for row in rows}
    return {event.event_id: by_id[owner] for event, owner in kept} | dropped


async def _insert_sightings(
    connection: Connection, tenant_id: str, kept: Sequence[tuple[FaceMatched, uuid.UUID]]
) -> set[uuid.UUID]:
    """Insert the sightings not stored yet; the ids of those inserted now (a redelivered one is not)."""
    rows = await connection.fetch(
        "INSERT INTO sightings (tenant_id, sighting_id, person_id, site_id, camera_id, captured_at, similarity,"
        " crop_key) SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[],"
        " $7::float8[], $8::text[]) ON CONFLICT DO NOTHING RETURNING sighting_id",
        tenant_id,
        [event.source_event_id for event, _ in kept],
        [owner for _, owner in kept],
        [event.site_id for event, _ in kept],
        [event.camera_id for event, _ in kept],
        [event.captured_at for event, _ in kept],
        [event.similarity for event, _ in kept],
        [event.crop_key for event, _ in kept],
    )
    return {row["sighting_id"] for row in rows}


def _by_owner(kept: Sequence[tuple[FaceMatched, uuid.UUID]]) -> dict[uuid.UUID, list[FaceMatched]]:
    """Sightings per person, persons in id order: concurrent batches lock person rows in one order, no deadlock."""
    grouped: dict[uuid.UUID, list[FaceMatched]] = defaultdict(list)
    for event, owner in kept:
        grouped[owner].append(event)
    return dict(sorted(grouped.items()))


def _person_change(
    owner: uuid.UUID, events: Sequence[FaceMatched], inserted: set[uuid.UUID]
) -> tuple[uuid.UUID, str, str, datetime, datetime, uuid.UUID, int]:
    """One person's row to upsert: created by its earliest sighting here, widened by all, counting those new."""
    first = min(events, key=lambda event: (event.captured_at, event.event_id))
    new_sightings = {event.source_event_id for event in events} & inserted
    return (
        owner,
        first.person_kind.value,
        first.site_id,
        first.captured_at,
        max(event.captured_at for event in events),
        first.event_id,
        len(new_sightings),
    )


async def _current_persons(connection: Connection, person_ids: set[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
    """The person a sighting of each of `person_ids` belongs to now: itself, the person a merge joined it to, or
    None if it was erased (merges can chain: A into B, then B into C). One query per link of the longest chain."""
    owners: dict[uuid.UUID, uuid.UUID | None] = {person_id: person_id for person_id in person_ids}
    for _ in range(100):
        pending = {owner for owner in owners.values() if owner is not None}
        rows = await connection.fetch(
            "SELECT person_id, merged_into FROM retired_persons WHERE person_id = ANY($1::uuid[])", list(pending)
        )
        if not rows:
            return owners
        retired = {row["person_id"]: row["merged_into"] for row in rows}
        owners = {
            source: owner if owner is None or owner not in retired else retired[owner]
            for source, owner in owners.items()
        }
    raise RuntimeError(f"merge chain of one of {sorted(person_ids)} does not end")
