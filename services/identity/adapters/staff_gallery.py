"""The staff gallery in NATS KV (bucket `staff_gallery`, key `<tenant>.<staff_id>`): identity owns it,
edges watch their tenant's keys and drop faces that match."""

from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from schemas.staff import StaffGalleryEntry
from schemas.subjects import staff_gallery_key
from services.common.bus import open_staff_gallery


class StaffGalleryStore:
    """Writes and deletes staff entries; the latest value of a key is the state (history 1)."""

    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "StaffGalleryStore":
        return cls(await open_staff_gallery(connection, replicas))

    async def put(self, entry: StaffGalleryEntry) -> int:
        """Write or replace the entry; its KV revision."""
        return await self._bucket.put(staff_gallery_key(entry.tenant_id, entry.staff_id), entry.to_json_bytes())

    async def get(self, tenant_id: str, staff_id: str) -> StaffGalleryEntry | None:
        try:
            found = await self._bucket.get(staff_gallery_key(tenant_id, staff_id))
        except KeyNotFoundError:  # also a deleted key
            return None
        return StaffGalleryEntry.model_validate_json(found.value or b"")

    async def delete(self, tenant_id: str, staff_id: str) -> bool:
        """Delete the entry; False if there was none. Watching edges stop filtering that person."""
        if await self.get(tenant_id, staff_id) is None:
            return False
        await self._bucket.delete(staff_gallery_key(tenant_id, staff_id))
        return True
