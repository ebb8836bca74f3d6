"""The two connections of a service that owns a Postgres schema, opened in order and closed in reverse."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from faststream.nats import NatsBroker

from schemas.subjects import StreamSpec
from services.common.bus import connect_broker
from services.common.postgres import connect_postgres
from services.common.settings import PostgresServiceSettings


@asynccontextmanager
async def postgres_and_broker(
    settings: PostgresServiceSettings,
    service: str,
    schema: str,
    role: str,
    migrations: Path,
    streams: Sequence[StreamSpec],
) -> AsyncIterator[tuple[asyncpg.Pool, NatsBroker]]:
    """Postgres migrated and pooled as `role`, then NATS with `streams` declared; both waited for a bounded time."""
    timeout = settings.startup_timeout_seconds
    pool = await connect_postgres(settings.postgres_dsn, schema, role, migrations, timeout)
    try:
        broker = await connect_broker(settings, service, streams)
        try:
            yield pool, broker
        finally:
            await broker.stop()
    finally:
        await pool.close()
