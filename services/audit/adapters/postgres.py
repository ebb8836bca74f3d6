"""The `audit` schema: one append-only chain of records per tenant."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg

from services.audit.domain.chain import AuditEntry, AuditRecord, next_record
from services.common.postgres import tenant_transaction

SCHEMA = "audit"
ROLE = "revisit_audit"
COLUMNS = (
    "tenant_id, seq, event_id, service, action, actor, resource, details_text, occurred_at, recorded_at, prev_hash,"
    " hash"
)
# Records written before migration 002 keep their details in jsonb only; their hash covers the parsed value.
READ_COLUMNS = COLUMNS + ", details"


class AuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def append(self, entry: AuditEntry) -> AuditRecord | None:
        """Append to the tenant's chain, one writer per tenant at a time; None if the event is already there."""
        async with tenant_transaction(self._pool, entry.tenant_id) as connection:
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"audit:{entry.tenant_id}")
            if await connection.fetchval("SELECT 1 FROM records WHERE event_id = $1", entry.event_id):
                return None
            head = await connection.fetchrow(f"SELECT {READ_COLUMNS} FROM records ORDER BY seq DESC LIMIT 1")
            record = next_record(None if head is None else _record(head), entry, datetime.now(UTC))
            await connection.execute(
                f"INSERT INTO records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                record.tenant_id,
                record.seq,
                record.event_id,
                record.service,
                record.action,
                record.actor,
                record.resource,
                record.details_text,
                record.occurred_at,
                record.recorded_at,
                record.prev_hash,
                record.hash,
            )
        return record

    async def records(self, tenant_id: str, batch: int = 1000) -> AsyncIterator[AuditRecord]:
        """The tenant's chain in order, read in batches so a long chain does not fill memory."""
        after = 0
        while True:
            async with tenant_transaction(self._pool, tenant_id) as connection:
                rows = await connection.fetch(
                    f"SELECT {READ_COLUMNS} FROM records WHERE seq > $1 ORDER BY seq LIMIT $2", after, batch
                )
            for row in rows:
                yield _record(row)
            if len(rows) < batch:
                return
            after = rows[-1]["seq"]

    async def recent(self, tenant_id: str, limit: int) -> list[AuditRecord]:
        """The tenant's newest `limit` records, newest first (what an admin reads in the console)."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(f"SELECT {READ_COLUMNS} FROM records ORDER BY seq DESC LIMIT $1", limit)
        return [_record(row) for row in rows]


def _record(row: asyncpg.Record) -> AuditRecord:
    stored = row["details_text"] if row["details_text"] is not None else row["details"]
    return AuditRecord(**{**dict(row), "details": json.loads(stored)})
