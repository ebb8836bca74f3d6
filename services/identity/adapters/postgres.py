"""The `identity` schema: the person directory."""

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from schemas import FaceMatched, PersonKind
from services.common.postgres import tenant_transaction

SCHEMA = "identity"
ROLE = "revisit_identity"


@dataclass(frozen=True)
class Person:
    person_id: uuid.UUID
    kind: PersonKind
    first_site_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    created_by_event: uuid.UUID


class PersonDirectory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record_sighting(self, event: FaceMatched) -> Person:
        """Create the person on its first sighting, else widen its first/last seen; returns the row."""
        async with tenant_transaction(self._pool, event.tenant_id) as connection:
            row = await connection.fetchrow(
                """
                INSERT INTO persons (tenant_id, person_id, kind, first_site_id, first_seen_at, last_seen_at,
                                     created_by_event)
                VALUES ($1, $2, $3, $4, $5, $5, $6)
                ON CONFLICT (tenant_id, person_id) DO UPDATE
                  SET first_seen_at = LEAST(persons.first_seen_at, EXCLUDED.first_seen_at),
                      last_seen_at = GREATEST(persons.last_seen_at, EXCLUDED.last_seen_at)
                RETURNING person_id, kind, first_site_id, first_seen_at, last_seen_at, created_by_event
                """,
                event.tenant_id,
                event.person_id,
                event.person_kind.value,
                event.site_id,
                event.captured_at,
                event.event_id,
            )
        assert row is not None
        return _person(row)

    async def list_persons(self, tenant_id: str, limit: int) -> list[Person]:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                "SELECT person_id, kind, first_site_id, first_seen_at, last_seen_at, created_by_event"
                " FROM persons ORDER BY last_seen_at DESC LIMIT $1",
                limit,
            )
        return [_person(row) for row in rows]

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
    )
