"""The production shape of Postgres access: a non-superuser login owns the schema and migrates it, the
pool acts as the service role, and row-level security keeps tenants apart even for that login."""

import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from schemas import FaceMatched
from services.common.postgres import connect_postgres, tenant_transaction
from services.identity.adapters.postgres import ROLE, SCHEMA, PersonDirectory
from services.identity.bootstrap import MIGRATIONS


async def test_a_non_superuser_owner_migrates_and_the_pool_acts_as_the_service_role(postgres_dsn: str) -> None:
    owner, database = f"identity_owner_{uuid.uuid4().hex[:8]}", f"roles_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')  # a database of its own: a fresh identity schema
        await admin.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE')
        await admin.execute(f'GRANT CREATE ON DATABASE "{database}" TO "{owner}"')
        if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ROLE):  # created by other tests
            await admin.execute(f'GRANT "{ROLE}" TO "{owner}" WITH ADMIN OPTION')
    finally:
        await admin.close()
    parts = urlsplit(postgres_dsn)
    owner_dsn = urlunsplit(parts._replace(netloc=f"{owner}@{parts.netloc.split('@')[-1]}", path=f"/{database}"))

    pool = await connect_postgres(owner_dsn, SCHEMA, ROLE, MIGRATIONS, timeout_seconds=10)
    try:
        async with pool.acquire() as connection:
            assert await connection.fetchval("SELECT current_user") == ROLE
            assert await connection.fetchval("SELECT session_user") == owner
        tenant, person = f"t{uuid.uuid4().hex[:8]}", uuid.uuid4()
        event = FaceMatched(
            tenant_id=tenant, source_event_id=uuid.uuid4(), site_id="s1", camera_id="c1",
            captured_at=datetime.now(UTC), person_id=person, is_new_person=True, embedding_model="m@1",
        )  # fmt: skip
        await PersonDirectory(pool).record_sighting(event)
        async with tenant_transaction(pool, f"other{uuid.uuid4().hex[:6]}") as connection:
            assert await connection.fetchval("SELECT count(*) FROM persons WHERE person_id = $1", person) == 0
        async with tenant_transaction(pool, tenant) as connection:
            assert await connection.fetchval("SELECT count(*) FROM persons WHERE person_id = $1", person) == 1
    finally:
        await pool.close()
