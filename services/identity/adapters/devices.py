"""Edge devices: their rows in the `identity` schema, and their NATS users.

A device is a NATS user of the application account, minted by identity with the account's signing key
(`services.common.nats_auth`), allowed to publish only its cameras' detections and to read only its
tenant's staff gallery. Revoking it adds its public key to the account JWT's revocation list, re-signed
with the operator's signing key and pushed through the system account: the server closes its connections
and refuses new ones. Only the public key is stored; the seed leaves identity once, in the answer.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import nats

from services.common.nats_auth import DeviceScope, UserCredentials, mint_device_credentials, revoke_users
from services.common.postgres import tenant_transaction

REVOCATION_LOCK = "identity:nats-account-revocations"
"""One revocation at a time across replicas: each re-signs the account JWT it read, so two at once could
drop one of them."""


class DeviceConflict(ValueError):
    """A device id already in use, or cameras that are not the site's."""


class DeviceRegistryUnavailable(RuntimeError):
    """Identity was started without the NATS keys it mints devices with (the message names the setting)."""


@dataclass(frozen=True)
class Device:
    tenant_id: str
    device_id: str
    site_id: str
    camera_ids: list[str]
    public_key: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NatsAuthority:
    """What minting and revoking device users needs; every field from settings (secrets from a Secret)."""

    public_url: str
    account: str
    account_signing_seed: str
    operator_signing_seed: str
    system_credentials: Path

    def mint(self, scope: DeviceScope, device_id: str) -> UserCredentials:
        return mint_device_credentials(scope, f"{scope.tenant_id}/{device_id}", self.account, self.account_signing_seed)

    async def revoke(self, public_key: str) -> None:
        system = await nats.connect(self.public_url, user_credentials=str(self.system_credentials), connect_timeout=5)
        try:
            await revoke_users(system, self.account, [public_key], self.operator_signing_seed)
        finally:
            await system.close()


class DeviceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, scope: DeviceScope, device_id: str, public_key: str) -> None:
        """Record the device; its site must exist and every camera must be registered at that site."""
        async with tenant_transaction(self._pool, scope.tenant_id) as connection:
            cameras = await connection.fetch(
                "SELECT camera_id FROM cameras WHERE site_id = $1 AND camera_id = ANY($2::text[])",
                scope.site_id,
                list(scope.camera_ids),
            )
            missing = sorted(set(scope.camera_ids) - {row["camera_id"] for row in cameras})
            if missing:
                raise DeviceConflict(f"cameras not registered at site {scope.site_id}: {', '.join(missing)}")
            inserted = await connection.fetchval(
                "INSERT INTO devices (tenant_id, device_id, site_id, camera_ids, public_key)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING device_id",
                scope.tenant_id,
                device_id,
                scope.site_id,
                list(scope.camera_ids),
                public_key,
            )
            if inserted is None:
                raise DeviceConflict(f"device {device_id} already exists in tenant {scope.tenant_id}")

    async def list(self, tenant_id: str, device_id: str | None = None) -> list[Device]:
        async with tenant_transaction(self._pool, tenant_id) as connection:
            rows = await connection.fetch(
                "SELECT tenant_id, device_id, site_id, camera_ids, public_key, created_at, revoked_at FROM devices"
                " WHERE $1::text IS NULL OR device_id = $1 ORDER BY device_id",
                device_id,
            )
        return [Device(**{**dict(row), "camera_ids": list(row["camera_ids"])}) for row in rows]

    async def revoke(self, tenant_id: str, device_id: str, authority: NatsAuthority) -> Device | None:
        """Mark the device revoked and revoke its NATS user (again, harmlessly, for a revoked one: a revocation
        lost in a crash is repeated by repeating the request). None for an unknown device."""
        async with tenant_transaction(self._pool, tenant_id) as connection:
            row = await connection.fetchrow(
                "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE device_id = $1"
                " RETURNING tenant_id, device_id, site_id, camera_ids, public_key, created_at, revoked_at",
                device_id,
            )
            if row is None:
                return None
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", REVOCATION_LOCK)
            await authority.revoke(row["public_key"])
        return Device(**{**dict(row), "camera_ids": list(row["camera_ids"])})
