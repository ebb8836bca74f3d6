"""The registry in the `identity` schema (the source of truth) and its mirror in the NATS KV bucket
`registry` (what ingest and reporting watch, and the retention jobs read).

A change is committed in Postgres first, then written to the bucket; if the bucket write fails the request
fails and repeating it (every registry write is an idempotent PUT or DELETE) writes it again.
"""

import json

import asyncpg
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from schemas import subjects
from schemas.registry import CameraEntry, RegistryValue, RetentionPolicyEntry, SiteEntry, TenantModelsEntry
from services.common.kv_mirror import state_bucket
from services.common.postgres import tenant_transaction


class RegistryConflict(ValueError):
    """A change the registry's references forbid (a site with cameras, a camera of an unknown site)."""


class RegistryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put_site(self, entry: SiteEntry) -> bool:
        """Create or replace the site; whether it was new."""
        async with tenant_transaction(self._pool, entry.tenant_id) as connection:
            created: bool = await connection.fetchval(
                """
                INSERT INTO sites (tenant_id, site_id, name, time_zone, opening_hours, updated_at)
                VALUES ($1, $2, $3, $4, $5::jsonb, $6)
                ON CONFLICT (tenant_id, site_id) DO UPDATE
                  SET name = EXCLUDED.name, time_zone = EXCLUDED.time_zone,
                      opening_hours = EXCLUDED.opening_hours, updated_at = EXCLUDED.updated_at
                RETURNING (xmax = 0)
                """,
                entry.tenant_id,
                entry.site_id,
                entry.name,
                entry.time_zone,
                None if entry.opening_hours is None else json.dumps(entry.model_dump(mode="json")["opening_hours"]),
                entry.updated_at,
            )
        return created

    async def sites(self, tenant_id: str, site_id: str | None = None) -> list[SiteEntry]:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                "SELECT tenant_id, site_id, name, time_zone, opening_hours, updated_at FROM sites"
                " WHERE $1::text IS NULL OR site_id = $1 ORDER BY site_id",
                site_id,
            )
        return [
            SiteEntry.model_validate({**dict(row), "opening_hours": json.loads(row["opening_hours"] or "null")})
            for row in rows
        ]

    async def delete_site(self, tenant_id: str, site_id: str) -> bool:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            cameras = await connection.fetchval("SELECT count(*) FROM cameras WHERE site_id = $1", site_id)
            if cameras:
                raise RegistryConflict(f"site {site_id} still has {cameras} camera(s): delete them first")
            result = await connection.execute("DELETE FROM sites WHERE site_id = $1", site_id)
        return result != "DELETE 0"

    async def put_camera(self, entry: CameraEntry) -> bool:
        async with tenant_transaction(self._pool, entry.tenant_id) as connection:
            if not await connection.fetchval("SELECT 1 FROM sites WHERE site_id = $1", entry.site_id):
                raise RegistryConflict(f"no site {entry.site_id} in tenant {entry.tenant_id}: create it first")
            created: bool = await connection.fetchval(
                """
                INSERT INTO cameras (tenant_id, camera_id, site_id, name, updated_at) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (tenant_id, camera_id) DO UPDATE
                  SET site_id = EXCLUDED.site_id, name = EXCLUDED.name, updated_at = EXCLUDED.updated_at
                RETURNING (xmax = 0)
                """,
                entry.tenant_id,
                entry.camera_id,
                entry.site_id,
                entry.name,
                entry.updated_at,
            )
        return created

    async def cameras(self, tenant_id: str, camera_id: str | None = None) -> list[CameraEntry]:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                "SELECT tenant_id, camera_id, site_id, name, updated_at FROM cameras"
                " WHERE $1::text IS NULL OR camera_id = $1 ORDER BY camera_id",
                camera_id,
            )
        return [CameraEntry.model_validate(dict(row)) for row in rows]

    async def delete_camera(self, tenant_id: str, camera_id: str) -> bool:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            result = await connection.execute("DELETE FROM cameras WHERE camera_id = $1", camera_id)
        return result != "DELETE 0"

    async def set_models(self, entry: TenantModelsEntry) -> None:
        async with tenant_transaction(self._pool, entry.tenant_id) as connection:
            await connection.execute("DELETE FROM tenant_models")
            await connection.executemany(
                "INSERT INTO tenant_models (tenant_id, embedding_model) VALUES ($1, $2)",
                [(entry.tenant_id, model) for model in dict.fromkeys(entry.embedding_models)],
            )

    async def models(self, tenant_id: str) -> list[str]:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch("SELECT embedding_model FROM tenant_models ORDER BY embedding_model")
        return [row["embedding_model"] for row in rows]

    async def set_retention(self, entry: RetentionPolicyEntry) -> None:
        async with tenant_transaction(self._pool, entry.tenant_id) as connection:
            await connection.execute(
                """
                INSERT INTO retention_policies (tenant_id, crops_days, vectors_unseen_days, sightings_days,
                                                visits_days, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (tenant_id) DO UPDATE
                  SET crops_days = EXCLUDED.crops_days, vectors_unseen_days = EXCLUDED.vectors_unseen_days,
                      sightings_days = EXCLUDED.sightings_days, visits_days = EXCLUDED.visits_days,
                      updated_at = EXCLUDED.updated_at
                """,
                entry.tenant_id,
                entry.crops_days,
                entry.vectors_unseen_days,
                entry.sightings_days,
                entry.visits_days,
                entry.updated_at,
            )

    async def retention(self, tenant_id: str) -> RetentionPolicyEntry | None:
        """The tenant's own policy, or None if it has not set one (the defaults apply)."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            row = await connection.fetchrow(
                "SELECT tenant_id, crops_days, vectors_unseen_days, sightings_days, visits_days, updated_at"
                " FROM retention_policies"
            )
        return None if row is None else RetentionPolicyEntry.model_validate(dict(row))


class RegistryBucket:
    """The registry's current state in NATS KV, one key per site, camera and tenant model list."""

    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "RegistryBucket":
        return cls(await state_bucket(connection, subjects.REGISTRY_BUCKET, replicas))

    async def put(self, key: str, value: RegistryValue) -> None:
        await self._bucket.put(key, value.to_json_bytes())

    async def delete(self, key: str) -> None:
        try:
            await self._bucket.delete(key)
        except KeyNotFoundError:
            pass
