"""Tenants' matching overrides in the NATS KV bucket `matcher_tenant_settings`, mirrored in memory.

Key: the tenant id; value: `TenantMatchSettings` JSON. The matcher owns the bucket and creates it at start.
Every face is decided with its tenant's policy, so each replica reads a mirror (`KvMirror`), not the bucket.
"""

from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.common.kv_mirror import KvMirror, state_bucket
from services.matcher.domain.tenant_settings import TenantMatchSettings

BUCKET = "matcher_tenant_settings"
NO_OVERRIDES = TenantMatchSettings()


class TenantSettings:
    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket
        self._overrides: dict[str, TenantMatchSettings] = {}
        self._mirror = KvMirror(bucket, self.apply)

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "TenantSettings":
        """The overrides loaded, following changes from then on."""
        settings = cls(await state_bucket(connection, BUCKET, replicas))
        await settings._mirror.start()
        return settings

    async def close(self) -> None:
        await self._mirror.stop()

    def overrides(self, tenant_id: str) -> TenantMatchSettings:
        return self._overrides.get(tenant_id, NO_OVERRIDES)

    async def replace(self, tenant_id: str, overrides: TenantMatchSettings) -> None:
        """Store the tenant's overrides (all of them: PUT semantics); this replica applies them at once, the
        others through their watchers."""
        await self._bucket.put(tenant_id, overrides.model_dump_json(exclude_none=True).encode())
        self._overrides[tenant_id] = overrides

    def apply(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._overrides.pop(key, None)
            return
        try:
            self._overrides[key] = TenantMatchSettings.model_validate_json(value)
        except ValidationError as error:
            raise ValueError(f"tenant settings {key}: {error}") from error
