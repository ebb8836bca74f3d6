"""What each tenant has registered (sites, cameras, embedding models), as identity publishes it in the NATS
KV bucket `registry`, and the check that an event names only registered things. No I/O here.

An event from an unregistered site or camera, or of a model the tenant does not use, is refused with the
reason: a device cannot invent a site that would show up in reports, nor a model id that would make the
matcher open a new vector collection.
"""

from dataclasses import dataclass, field

from pydantic import ValidationError

from schemas import FaceDetected
from schemas.registry import CameraEntry, SiteEntry, TenantModelsEntry
from services.common.bus import InvalidEvent


@dataclass
class TenantRegistry:
    sites: set[str] = field(default_factory=set)
    camera_sites: dict[str, str] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)


@dataclass
class Registry:
    tenants: dict[str, TenantRegistry] = field(default_factory=dict)

    def apply(self, key: str, value: bytes | None) -> None:
        """One change of the bucket: `<tenant>.site.<id>`, `<tenant>.camera.<id>` or `<tenant>.models`, with
        its new value or None (deleted). Raises ValueError for a key or value of another shape."""
        tenant_id, kind, *rest = key.split(".")
        tenant = self.tenants.setdefault(tenant_id, TenantRegistry())
        try:
            if kind == "site" and len(rest) == 1:
                self._apply_site(tenant, rest[0], value)
            elif kind == "camera" and len(rest) == 1:
                self._apply_camera(tenant, rest[0], value)
            elif kind == "models" and not rest:
                tenant.models = (
                    set() if value is None else set(TenantModelsEntry.model_validate_json(value).embedding_models)
                )
            else:
                raise ValueError(f"registry key {key} has no known shape")
        except ValidationError as error:
            raise ValueError(f"registry value of {key} is invalid: {error}") from error

    def check(self, event: FaceDetected) -> None:
        """Raises InvalidEvent naming what the tenant has not registered."""
        tenant = self.tenants.get(event.tenant_id, TenantRegistry())
        if event.site_id not in tenant.sites:
            raise InvalidEvent(f"site {event.site_id} is not registered for tenant {event.tenant_id} (PUT /v1/sites)")
        registered_site = tenant.camera_sites.get(event.camera_id)
        if registered_site is None:
            raise InvalidEvent(
                f"camera {event.camera_id} is not registered for tenant {event.tenant_id} (PUT /v1/cameras)"
            )
        if registered_site != event.site_id:
            raise InvalidEvent(f"camera {event.camera_id} is registered at site {registered_site}, not {event.site_id}")
        if event.embedding_model not in tenant.models:
            allowed = ", ".join(sorted(tenant.models)) or "none"
            raise InvalidEvent(
                f"embedding model {event.embedding_model} is not one of tenant {event.tenant_id}'s ({allowed};"
                " PUT /v1/embedding-models)"
            )

    @staticmethod
    def _apply_site(tenant: TenantRegistry, site_id: str, value: bytes | None) -> None:
        if value is None:
            tenant.sites.discard(site_id)
        else:
            tenant.sites.add(SiteEntry.model_validate_json(value).site_id)

    @staticmethod
    def _apply_camera(tenant: TenantRegistry, camera_id: str, value: bytes | None) -> None:
        if value is None:
            tenant.camera_sites.pop(camera_id, None)
        else:
            entry = CameraEntry.model_validate_json(value)
            tenant.camera_sites[entry.camera_id] = entry.site_id
