"""Migrations 007 to 009 on a database deployed before them: the rows of the unpartitioned sightings and visits
are copied into monthly partitions, and the visits get their rollups (the site-day level of 009 too)."""

import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.common.postgres import apply_migrations
from services.reporting.adapters.postgres import SCHEMA
from services.reporting.bootstrap import MIGRATIONS


async def test_existing_rows_move_into_monthly_partitions(postgres_dsn: str, tmp_path: Path) -> None:
    database = f"migration_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    connection = await asyncpg.connect(urlunsplit(urlsplit(postgres_dsn)._replace(path=f"/{database}")))
    try:
        before_partitions = tmp_path / "migrations"
        before_partitions.mkdir()
        for path in sorted(MIGRATIONS.glob("00[1-6]_*.sql")):
            shutil.copy(path, before_partitions)
        assert await apply_migrations(connection, SCHEMA, before_partitions) == [1, 2, 3, 4, 5, 6]
        person, october, november = (
            uuid.uuid4(),
            datetime(2026, 10, 31, 23, tzinfo=UTC),
            datetime(2026, 11, 1, tzinfo=UTC),
        )
        for at in (october, november):
            await connection.execute(
                "INSERT INTO reporting.sightings (tenant_id, event_id, site_id, camera_id, person_id, captured_at,"
                " source_event_id) VALUES ('t1', $1, 's1', 'c1', $2, $3, $4)",
                uuid.uuid4(),
                person,
                at,
                uuid.uuid4(),
            )
        await connection.execute(
            "INSERT INTO reporting.visits (tenant_id, visit_id, site_id, person_id, started_at, last_seen_at,"
            " sightings, is_returning) VALUES ('t1', $1, 's1', $2, $3, $4, 2, false)",
            uuid.uuid4(),
            person,
            october,
            november,
        )

        assert (await apply_migrations(connection, SCHEMA, MIGRATIONS))[0] == 7

        partitions = await connection.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'reporting.sightings'::regclass ORDER BY 1"
        )
        assert [row["relname"] for row in partitions] == ["sightings_2026_10", "sightings_2026_11"]
        assert await connection.fetchval("SELECT count(*) FROM reporting.sightings_2026_11") == 1
        assert await connection.fetchval("SELECT count(*) FROM reporting.visits_2026_10") == 1
        assert (
            await connection.fetchval("SELECT relkind FROM pg_class WHERE oid = 'reporting.visits'::regclass") == b"p"
        )
        site_day = await connection.fetchrow(
            "SELECT day, visits, unique_visitors, dwell_seconds FROM reporting.site_days WHERE tenant_id = 't1'"
        )
        assert site_day is not None and tuple(site_day) == (date(2026, 10, 31), 1, 1, 3600.0)  # s1 in UTC
        assert (
            await connection.fetchval(
                "SELECT sum(visits) FROM reporting.site_day_dwell WHERE tenant_id = 't1' AND minute = 60"
            )
            == 1
        )
    finally:
        await connection.close()
