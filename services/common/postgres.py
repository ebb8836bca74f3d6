"""asyncpg pools, numbered SQL migrations per schema, and tenant-scoped transactions for row-level security.

Migrations run as the DSN's user (the schema owner); the pool then `SET ROLE`s every connection to the
service's own role, which has rights on its schema only and is subject to the RLS policies, so a bug in
a query cannot read another tenant's rows or another service's tables.
"""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.common.logging import get_logger
from services.common.startup import wait_for_dependency

Connection = asyncpg.Connection | PoolConnectionProxy
log = get_logger(__name__)
MIGRATION_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
TENANT_SETTING = "revisit.tenant_id"


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    """The numbered `NNN_name.sql` files of a folder, in order; anything else there is an error."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNN_name.sql")
        found.append((int(match.group(1)), path))
    versions = [version for version, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations in {directory} are not numbered 1..n: {versions}")
    return found


async def apply_migrations(connection: asyncpg.Connection, schema: str, directory: Path) -> list[int]:
    """Apply the migrations not yet applied, each in its own transaction, one migrator at a time."""
    applied_now = []
    await connection.execute("SELECT pg_advisory_lock(hashtext($1))", f"migrations:{schema}")
    try:
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await connection.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await connection.fetch(f'SELECT version FROM "{schema}".schema_migrations')}
        for version, path in migration_files(directory):
            if version in done:
                continue
            async with connection.transaction():
                await connection.execute(f'SET LOCAL search_path TO "{schema}", public')
                await connection.execute(path.read_text())
                await connection.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)', version, path.name
                )
            applied_now.append(version)
            log.info("migration_applied", schema=schema, version=version, file=path.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock(hashtext($1))", f"migrations:{schema}")
    return applied_now


async def connect_postgres(
    dsn: str, schema: str, role: str, migrations: Path, timeout_seconds: float, max_size: int = 10
) -> asyncpg.Pool:
    """Wait for Postgres, migrate `schema`, and return a pool whose sessions act as `role`."""

    async def connect() -> asyncpg.Pool:
        connection = await asyncpg.connect(dsn, timeout=5)
        try:
            await apply_migrations(connection, schema, migrations)
        finally:
            await connection.close()

        async def act_as_service_role(conn: Connection) -> None:
            # on every acquire: the pool's RESET ALL on release undoes SET ROLE and search_path
            await conn.execute(f'SET ROLE "{role}"; SET search_path TO "{schema}"')

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, setup=act_as_service_role)
        assert pool is not None
        return pool

    return await wait_for_dependency(
        "Postgres",
        connect,
        timeout_seconds,
        hint="Check REVISIT_POSTGRES_DSN, that the server accepts connections, and that its user may create"
        " the schema and the service role (docs/operations.md).",
    )


@asynccontextmanager
async def tenant_transaction(pool: asyncpg.Pool, tenant_id: str) -> AsyncIterator[Connection]:
    """A transaction in which the RLS policies see only `tenant_id`'s rows."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT set_config($1, $2, true)", TENANT_SETTING, tenant_id)
        yield connection
