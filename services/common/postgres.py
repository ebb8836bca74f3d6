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
from services.common.startup import DependencyUnavailable, wait_for_dependency

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


class PrivilegeError(DependencyUnavailable):
    """The runtime login could rewrite what it must only append to; the service refuses to start."""


# Every role the session's login is a member of (so could SET ROLE to, or inherits from), and what in
# `schema` any of them could use to change or remove rows instead of only reading and inserting.
LEAST_PRIVILEGE_VIOLATIONS = """
WITH reachable AS (
  SELECT oid, rolname, rolsuper, rolbypassrls FROM pg_roles WHERE pg_has_role(session_user, oid, 'MEMBER')
), tables AS (
  SELECT c.oid, c.relname, c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
)
SELECT rolname || ' is a superuser' FROM reachable WHERE rolsuper
UNION ALL SELECT rolname || ' bypasses row-level security' FROM reachable WHERE rolbypassrls
UNION ALL SELECT r.rolname || ' owns schema ' || n.nspname
  FROM reachable r JOIN pg_namespace n ON n.nspowner = r.oid WHERE n.nspname = $1
UNION ALL SELECT r.rolname || ' owns ' || t.relname FROM reachable r JOIN tables t ON t.relowner = r.oid
UNION ALL SELECT r.rolname || ' may ' || p.privilege || ' ' || t.relname
  FROM reachable r CROSS JOIN tables t CROSS JOIN unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege)
  WHERE has_table_privilege(r.oid, t.oid, p.privilege)
"""


async def least_privilege_violations(connection: Connection, schema: str) -> list[str]:
    """What the session's login (and any role it can become) could do in `schema` beyond SELECT and INSERT."""
    return [row[0] for row in await connection.fetch(LEAST_PRIVILEGE_VIOLATIONS, schema)]


async def connect_postgres_as_login(
    dsn: str, migration_dsn: str, schema: str, role: str, migrations: Path, timeout_seconds: float, max_size: int = 10
) -> asyncpg.Pool:
    """Migrate `schema` as the owner login of `migration_dsn`, grant `role` to the login of `dsn`, and return
    a pool of that login, which must own nothing and be unable to become a role that may UPDATE, DELETE or
    TRUNCATE in `schema`. Unlike `connect_postgres` there is no `SET ROLE` that `RESET ROLE` could undo:
    the pool's login is the least-privileged identity itself."""

    async def connect() -> asyncpg.Pool:
        owner = await asyncpg.connect(migration_dsn, timeout=5)
        try:
            await apply_migrations(owner, schema, migrations)
            runtime = await asyncpg.connect(dsn, timeout=5)
            try:
                login = await runtime.fetchval("SELECT session_user")
            finally:
                await runtime.close()
            if login != await owner.fetchval("SELECT session_user"):
                await owner.execute(f'GRANT "{role}" TO "{login}"')  # inherited: no SET ROLE needed
        finally:
            await owner.close()

        async def use_schema(conn: Connection) -> None:
            await conn.execute(f'SET search_path TO "{schema}"')

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, setup=use_schema)
        assert pool is not None
        return pool

    pool = await wait_for_dependency(
        "Postgres",
        connect,
        timeout_seconds,
        hint="Check REVISIT_POSTGRES_DSN (the runtime login) and REVISIT_POSTGRES_MIGRATION_DSN (the schema owner),"
        " that the server accepts both, and that the owner may create the schema and the service role"
        " (docs/operations.md).",
    )
    async with pool.acquire() as connection:
        violations = await least_privilege_violations(connection, schema)
    if violations:
        await pool.close()
        raise PrivilegeError(
            f"the login of REVISIT_POSTGRES_DSN must only read and insert in schema {schema}, but: "
            + "; ".join(violations)
            + ". Use a separate LOGIN role for it and the owner only in REVISIT_POSTGRES_MIGRATION_DSN."
        )
    return pool
