"""Operations of the person lifecycle in the `identity` schema: a unit of work for identity's own step,
the operation record with its outbox, and the steps other services report.

The events an operation publishes are stored with it (the outbox) in the transaction that changes
identity's store: if identity dies before publishing them, the resume loop publishes them later; event
ids are derived from the operation id, so publishing twice is harmless.
"""

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schemas import (
    AuditEntryRecorded,
    CropsErasureRequested,
    PersonErased,
    PersonKind,
    PersonKindChanged,
    PersonsMarkedDifferent,
    PersonsMerged,
    PersonSplit,
)
from schemas.base import Event
from services.common.postgres import Connection, tenant_transaction
from services.identity.domain.lifecycle import (
    IDENTITY_STEP,
    OperationKind,
    OperationStatus,
    PersonBusy,
    PersonNotFound,
    status_after,
)

OUTBOX_MODELS: dict[str, type[Event]] = {
    model.model_fields["schema_name"].default: model
    for model in (
        PersonsMerged,
        PersonSplit,
        PersonErased,
        PersonKindChanged,
        CropsErasureRequested,
        PersonsMarkedDifferent,
        AuditEntryRecorded,
    )
}


@dataclass(frozen=True)
class Outgoing:
    """An event to publish on a subject once the transaction that decided it has committed."""

    subject: str
    event: Event


@dataclass(frozen=True)
class StepView:
    step: str
    changed: int
    completed_at: datetime


@dataclass(frozen=True)
class OperationView:
    operation_id: uuid.UUID
    tenant_id: str
    kind: OperationKind
    status: OperationStatus
    person_id: uuid.UUID
    requested_by: str
    expected_steps: list[str]
    steps: list[StepView]
    result: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LockedPerson:
    person_id: uuid.UUID
    kind: PersonKind


class LifecycleUnit:
    """Identity's own changes for one operation, inside one tenant transaction."""

    def __init__(self, connection: Connection, tenant_id: str) -> None:
        self._connection, self.tenant_id = connection, tenant_id

    async def lock_persons(self, person_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, LockedPerson]:
        """The persons, locked until commit (in id order: two operations never deadlock); all must exist."""
        rows = await self._connection.fetch(
            "SELECT person_id, kind FROM persons WHERE person_id = ANY($1::uuid[]) ORDER BY person_id FOR UPDATE",
            list(person_ids),
        )
        found = {row["person_id"]: LockedPerson(row["person_id"], PersonKind(row["kind"])) for row in rows}
        missing = [str(p) for p in person_ids if p not in found]
        if missing:
            raise PersonNotFound(f"no person {', '.join(missing)} in tenant {self.tenant_id}")
        return found

    async def sighting_ids(self, person_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self._connection.fetch("SELECT sighting_id FROM sightings WHERE person_id = $1", person_id)
        return [row["sighting_id"] for row in rows]

    async def move_sightings(
        self, from_persons: Sequence[uuid.UUID], to_person: uuid.UUID, only: Sequence[uuid.UUID] | None = None
    ) -> int:
        """Move the sightings of `from_persons` (only those listed in `only`, if given) to `to_person`."""
        result = await self._connection.execute(
            "UPDATE sightings SET person_id = $2 WHERE person_id = ANY($1::uuid[])"
            " AND ($3::uuid[] IS NULL OR sighting_id = ANY($3::uuid[]))",
            list(from_persons),
            to_person,
            None if only is None else list(only),
        )
        return int(result.split()[-1])

    async def create_person(self, person_id: uuid.UUID, kind: PersonKind, created_by: uuid.UUID) -> None:
        """A person made by a split: its seen-times and counts come from `refresh_person`."""
        await self._connection.execute(
            "INSERT INTO persons (tenant_id, person_id, kind, first_site_id, first_seen_at, last_seen_at,"
            " created_by_event) VALUES ($1, $2, $3, '', now(), now(), $4) ON CONFLICT DO NOTHING",
            self.tenant_id,
            person_id,
            kind.value,
            created_by,
        )

    async def refresh_person(self, person_id: uuid.UUID) -> None:
        """First and last seen, first site and sighting count, recomputed from the person's sightings."""
        await self._connection.execute(
            """
            UPDATE persons p SET first_seen_at = s.first_seen_at, last_seen_at = s.last_seen_at,
                                 first_site_id = s.first_site_id, sightings = s.sightings
            FROM (SELECT min(captured_at) AS first_seen_at, max(captured_at) AS last_seen_at, count(*) AS sightings,
                         (array_agg(site_id ORDER BY captured_at))[1] AS first_site_id
                  FROM sightings WHERE person_id = $1) s
            WHERE p.person_id = $1 AND s.sightings > 0
            """,
            person_id,
        )

    async def set_kind(self, person_id: uuid.UUID, kind: PersonKind) -> bool:
        """Whether the person's kind changed."""
        result = await self._connection.execute(
            "UPDATE persons SET kind = $2 WHERE person_id = $1 AND kind <> $2", person_id, kind.value
        )
        return result.split()[-1] != "0"

    async def revive(self, person_id: uuid.UUID) -> None:
        """A person retired by a merge comes back (the merge is undone)."""
        await self._connection.execute("DELETE FROM retired_persons WHERE person_id = $1", person_id)

    async def retire(
        self, person_ids: Sequence[uuid.UUID], merged_into: uuid.UUID | None, operation_id: uuid.UUID
    ) -> None:
        """Delete the persons' rows and remember where their late sightings go (None: erased, dropped)."""
        await self._connection.execute("DELETE FROM persons WHERE person_id = ANY($1::uuid[])", list(person_ids))
        await self._connection.executemany(
            "INSERT INTO retired_persons (tenant_id, person_id, merged_into, operation_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (tenant_id, person_id) DO UPDATE SET merged_into = EXCLUDED.merged_into,"
            " operation_id = EXCLUDED.operation_id, retired_at = now()",
            [(self.tenant_id, person_id, merged_into, operation_id) for person_id in person_ids],
        )
        await self._connection.execute(
            "UPDATE retired_persons SET merged_into = $2 WHERE merged_into = ANY($1::uuid[])",
            list(person_ids),
            merged_into,
        )  # persons merged earlier into these follow them

    async def delete_sightings(self, person_id: uuid.UUID) -> list[str]:
        """Delete the person's sightings; returns their crop keys."""
        rows = await self._connection.fetch("DELETE FROM sightings WHERE person_id = $1 RETURNING crop_key", person_id)
        return [row["crop_key"] for row in rows if row["crop_key"]]

    async def mark_different(self, pair: tuple[uuid.UUID, uuid.UUID], marked_by: str) -> bool:
        inserted = await self._connection.fetchval(
            "INSERT INTO different_persons (tenant_id, person_a, person_b, marked_by) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING person_a",
            self.tenant_id,
            pair[0],
            pair[1],
            marked_by,
        )
        return inserted is not None

    async def record_operation(
        self,
        operation_id: uuid.UUID,
        kind: OperationKind,
        person_id: uuid.UUID,
        requested_by: str,
        expected_steps: Sequence[str],
        outbox: Sequence[Outgoing],
        result: dict[str, Any],
        identity_changed: int,
        involved: Sequence[uuid.UUID],
    ) -> None:
        """The operation, running, with identity's own step already done and the events to publish; the
        `involved` persons may take part in no other open operation (PersonBusy)."""
        busy = await self._connection.fetch(
            "SELECT person_id, operation_id FROM operation_persons WHERE person_id = ANY($1::uuid[])", list(involved)
        )
        if busy:
            running = ", ".join(f"{row['person_id']} (operation {row['operation_id']})" for row in busy)
            raise PersonBusy(f"persons still in a running operation: {running}; retry when it completes")
        await self._connection.executemany(
            "INSERT INTO operation_persons (tenant_id, person_id, operation_id) VALUES ($1, $2, $3)",
            [(self.tenant_id, person, operation_id) for person in dict.fromkeys(involved)],
        )
        await self._connection.execute(
            "INSERT INTO operations (tenant_id, operation_id, kind, status, person_id, requested_by, expected_steps,"
            " outbox, result) VALUES ($1, $2, $3, 'running', $4, $5, $6, $7::jsonb, $8::jsonb)",
            self.tenant_id,
            operation_id,
            kind.value,
            person_id,
            requested_by,
            list(expected_steps),
            json.dumps([_outbox_entry(item) for item in outbox]),
            json.dumps(result),
        )
        await self._connection.execute(
            "INSERT INTO operation_steps (tenant_id, operation_id, step, changed) VALUES ($1, $2, $3, $4)",
            self.tenant_id,
            operation_id,
            IDENTITY_STEP,
            identity_changed,
        )
        await self._connection.execute(
            "INSERT INTO open_operations (tenant_id, operation_id) VALUES ($1, $2)", self.tenant_id, operation_id
        )


class LifecycleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def unit(self, tenant_id: str) -> AsyncIterator[LifecycleUnit]:
        """One transaction: everything done through the unit commits together, or not at all."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            yield LifecycleUnit(connection, tenant_id)

    async def complete_step(
        self, tenant_id: str, operation_id: uuid.UUID, step: str, changed: int
    ) -> tuple[OperationView, bool] | None:
        """Record a step a service reported; returns the operation and whether this report completed it
        (None for an unknown operation)."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            row = await connection.fetchrow(
                "SELECT status FROM operations WHERE operation_id = $1 FOR UPDATE", operation_id
            )
            if row is None:
                return None
            await connection.execute(
                "INSERT INTO operation_steps (tenant_id, operation_id, step, changed) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT DO NOTHING",
                tenant_id,
                operation_id,
                step,
                changed,
            )
            operation = await _operation(connection, operation_id)
            assert operation is not None
            completes = (
                operation.status is not OperationStatus.COMPLETED
                and status_after(operation.expected_steps, [s.step for s in operation.steps])
                is OperationStatus.COMPLETED
            )
            if completes:
                await connection.execute(
                    "UPDATE operations SET status = 'completed', outbox = '[]'::jsonb, updated_at = now()"
                    " WHERE operation_id = $1",
                    operation_id,
                )
                await connection.execute("DELETE FROM open_operations WHERE operation_id = $1", operation_id)
                await connection.execute("DELETE FROM operation_persons WHERE operation_id = $1", operation_id)
                operation = await _operation(connection, operation_id)
                assert operation is not None
        return operation, completes

    async def get_operation(self, tenant_id: str, operation_id: uuid.UUID) -> OperationView | None:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            return await _operation(connection, operation_id)

    async def open_operations(self, older_than_seconds: float) -> list[tuple[str, uuid.UUID]]:
        """Operations still open after this long, across tenants (ids only)."""
        rows = await self._pool.fetch(
            "SELECT tenant_id, operation_id FROM open_operations"
            " WHERE opened_at < now() - make_interval(secs => $1) ORDER BY opened_at LIMIT 100",
            older_than_seconds,
        )
        return [(row["tenant_id"], row["operation_id"]) for row in rows]

    async def outbox(self, tenant_id: str, operation_id: uuid.UUID) -> list[Outgoing]:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            raw = await connection.fetchval("SELECT outbox FROM operations WHERE operation_id = $1", operation_id)
        return [_outgoing(item) for item in json.loads(raw or "[]")]

    async def merged_sightings(self, tenant_id: str, operation_id: uuid.UUID) -> dict[uuid.UUID, list[uuid.UUID]]:
        """For a merge: the sightings each merged person had, to undo it."""
        operation = await self.get_operation(tenant_id, operation_id)
        if operation is None or operation.kind is not OperationKind.MERGE:
            return {}
        return {uuid.UUID(p): [uuid.UUID(s) for s in ids] for p, ids in operation.result.get("merged", {}).items()}


async def _operation(connection: Connection, operation_id: uuid.UUID) -> OperationView | None:
    row = await connection.fetchrow(
        "SELECT operation_id, tenant_id, kind, status, person_id, requested_by, expected_steps, result, created_at,"
        " updated_at FROM operations WHERE operation_id = $1",
        operation_id,
    )
    if row is None:
        return None
    steps = await connection.fetch(
        "SELECT step, changed, completed_at FROM operation_steps WHERE operation_id = $1 ORDER BY completed_at",
        operation_id,
    )
    return OperationView(
        operation_id=row["operation_id"],
        tenant_id=row["tenant_id"],
        kind=OperationKind(row["kind"]),
        status=OperationStatus(row["status"]),
        person_id=row["person_id"],
        requested_by=row["requested_by"],
        expected_steps=list(row["expected_steps"]),
        steps=[StepView(s["step"], s["changed"], s["completed_at"]) for s in steps],
        result=json.loads(row["result"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _outbox_entry(item: Outgoing) -> dict[str, Any]:
    return {"subject": item.subject, "event": json.loads(item.event.to_json_bytes())}


def _outgoing(item: dict[str, Any]) -> Outgoing:
    model = OUTBOX_MODELS[item["event"]["schema"]]
    return Outgoing(item["subject"], model.model_validate(item["event"]))
