"""The staff gallery (NATS KV, written by identity) as the matcher reads it: staff vectors per tenant and model.

Keys are `<tenant>.<staff_id>` and values `StaffGalleryEntry` JSON; a deleted key is a removed staff member.
"""

from nats.aio.client import Client as NatsClient
from pydantic import ValidationError

from schemas.staff import StaffGalleryEntry
from services.common.bus import open_staff_gallery
from services.common.kv_mirror import KvMirror
from services.matcher.domain.staff import StaffVectors, staff_vectors


class StaffGallery:
    def __init__(self) -> None:
        self._entries: dict[str, StaffGalleryEntry] = {}
        self._vectors: dict[tuple[str, str], StaffVectors | None] = {}
        self._mirror: KvMirror | None = None

    @classmethod
    async def open(cls, connection: NatsClient, replicas: int = 1) -> "StaffGallery":
        """The gallery with its current entries loaded, following changes from then on."""
        gallery = cls()
        gallery._mirror = KvMirror(await open_staff_gallery(connection, replicas), gallery.apply)
        await gallery._mirror.start()
        return gallery

    async def close(self) -> None:
        if self._mirror is not None:
            await self._mirror.stop()

    def vectors(self, tenant_id: str, embedding_model: str) -> StaffVectors | None:
        """The tenant's staff vectors of this model (built once per change of the gallery)."""
        key = (tenant_id, embedding_model)
        if key not in self._vectors:
            self._vectors[key] = staff_vectors(
                entry
                for entry in self._entries.values()
                if entry.tenant_id == tenant_id and entry.embedding_model == embedding_model
            )
        return self._vectors[key]

    def apply(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._entries.pop(key, None)
        else:
            try:
                self._entries[key] = StaffGalleryEntry.model_validate_json(value)
            except ValidationError as error:
                raise ValueError(f"staff gallery entry {key}: {error}") from error
        self._vectors.clear()
