"""The `audit` schema: one append-only chain of records per tenant."""

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import asyncpg

from services.audit.domain.chain import AuditEntry, AuditRecord, next_record
from services.common.postgres import Connection, tenant_transaction

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
        """One entry: see `append_all`."""
        return (await self.append_all([entry]))[0]

    async def append_all(self, entries: Sequence[AuditEntry]) -> list[AuditRecord | None]:
        """Append to each tenant's chain in the order given, one writer per tenant at a time, one transaction per
        tenant; for each entry its record, or None if its event is already there (or earlier in `entries`)."""
        appended: dict[int, AuditRecord | None] = {}
        for tenant_id, positions in _positions_by_tenant(entries).items():
            async with tenant_transaction(self._pool, tenant_id) as connection:
                records = await _append_to_chain(connection, tenant_id, [entries[p] for p in positions])
            appended |= dict(zip(positions, records, strict=True))
        return [appended[position] for position in range(len(entries))]

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


def _positions_by_tenant(entries: Sequence[AuditEntry]) -> dict[str, list[int]]:
    positions: dict[str, list[int]] = defaultdict(list)
    for position, entry in enumerate(entries):
        positions[entry.tenant_id].append(position)
    return positions


async def _append_to_chain(
    connection: Connection, tenant_id: str, entries: Sequence[AuditEntry]
) -> list[AuditRecord | None]:
    """Chain the entries not recorded yet after the tenant's head, inside its transaction and advisory lock."""
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"audit:{tenant_id}")
    rows = await connection.fetch(
        "SELECT event_id FROM records WHERE event_id = ANY($1::uuid[])", [entry.event_id for entry in entries]
    )
    recorded = {row["event_id"] for row in rows}
    head = await connection.fetchrow(f"SELECT {READ_COLUMNS} FROM records ORDER BY seq DESC LIMIT 1")
    previous, now = None if head is None else _record(head), datetime.now(UTC)
    records: list[AuditRecord | None] = []
    for entry in entries:
        if entry.event_id in recorded:
            records.append(None)
            continue
        previous = next_record(previous, entry, now)
        recorded.add(entry.event_id)
        records.append(previous)
    new = [record for record in records if record is not None]
    await connection.executemany(
        f"INSERT INTO records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        [
            (
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
            for record in new
        ],
    )
    return records


def _record(row: asyncpg.Record) -> AuditRecord:
    stored = row["details_text"] if row["details_text"] is not None else row["details"]
    return AuditRecord(**{**dict(row), "details": json.loads(stored)})
