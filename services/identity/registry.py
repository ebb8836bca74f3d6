"""Admin routes for the registry of the caller's tenant: sites, cameras, allowed embedding models and the
retention policy.

Admins change, analysts and viewers read. Every change is audited and mirrored into the NATS KV bucket
`registry`, which ingest (sites, cameras, models) and reporting (time zones) watch and every service's
retention job reads (the policy, `<tenant>.retention`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import AuditEntryRecorded, subjects
from schemas.base import TOKEN_PATTERN
from schemas.models import MODEL_ID_PATTERN, embedding_dimension
from schemas.registry import (
    RETENTION_MAX_DAYS,
    CameraEntry,
    OpeningHours,
    RetentionPolicyEntry,
    SiteEntry,
    TenantModelsEntry,
    Weekday,
)
from services.common.auth import Principal, Role, require_roles
from services.common.bus import EventPublisher
from services.common.http import NulFreeText
from services.common.nats_auth import DeviceScope
from services.identity.adapters.devices import Device, DeviceConflict, DeviceStore, NatsAuthority
from services.identity.adapters.registry import RegistryBucket, RegistryConflict, RegistryStore

router = APIRouter(prefix="/v1", tags=["registry"])
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.ANALYST, Role.VIEWER))]
SiteId = Annotated[str, Path(pattern=TOKEN_PATTERN)]
CameraId = Annotated[str, Path(pattern=TOKEN_PATTERN)]


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: NulFreeText = Field(min_length=1, max_length=200)
    time_zone: str = Field(
        min_length=1, max_length=64, description="IANA time zone, e.g. America/New_York", examples=["Europe/Paris"]
    )
    opening_hours: dict[Weekday, list[OpeningHours]] | None = None


class CameraIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: str = Field(pattern=TOKEN_PATTERN)
    name: NulFreeText | None = Field(None, max_length=200)


class ModelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedding_models: list[Annotated[str, Field(pattern=MODEL_ID_PATTERN)]] = Field(max_length=16)


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    crops_days: int = Field(ge=1, le=RETENTION_MAX_DAYS, description="Face crops older than this are deleted")
    vectors_unseen_days: int = Field(
        ge=1, le=RETENTION_MAX_DAYS, description="A person's vectors go once its newest is older than this"
    )
    sightings_days: int = Field(ge=1, le=RETENTION_MAX_DAYS, description="Sightings older than this are deleted")
    visits_days: int = Field(ge=1, le=RETENTION_MAX_DAYS, description="Visits older than this are deleted")


class RetentionOut(BaseModel):
    policy: RetentionPolicyEntry
    is_default: bool = Field(description="True: the tenant set none, these are the defaults of the settings")


def stores(request: Request) -> tuple[RegistryStore, RegistryBucket]:
    return request.app.state.registry, request.app.state.registry_bucket


@contextmanager
def registry_errors() -> Iterator[None]:
    """Invalid values are 422 and broken references 409, each with the reason."""
    try:
        yield
    except ValidationError as error:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, reasons) from error
    except RegistryConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error


async def audit(request: Request, principal: Principal, action: str, resource: str, details: dict[str, object]) -> None:
    publish: EventPublisher = request.app.state.publish
    entry = AuditEntryRecorded(
        tenant_id=principal.tenant_id,
        service="identity",
        action=action,
        actor=principal.subject,
        resource=resource,
        details=details,
    )
    await publish(subjects.audit_entry("identity", action, principal.tenant_id), entry)


def not_found(what: str, name: str, tenant_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {name} in tenant {tenant_id}")


@router.put("/sites/{site_id}")
async def put_site(site_id: SiteId, body: SiteIn, principal: Admin, request: Request, response: Response) -> SiteEntry:
    """Create or replace a site; reports use its time zone for local days and hours."""
    store, bucket = stores(request)
    with registry_errors():
        entry = SiteEntry.model_validate({"tenant_id": principal.tenant_id, "site_id": site_id, **body.model_dump()})
        created = await store.put_site(entry)
    await bucket.put(subjects.registry_site_key(principal.tenant_id, site_id), entry)
    await audit(request, principal, "site_put", f"site/{site_id}", {"time_zone": entry.time_zone})
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return entry


@router.get("/sites")
async def list_sites(principal: Reader, request: Request) -> dict[str, list[SiteEntry]]:
    store, _ = stores(request)
    return {"items": await store.sites(principal.tenant_id)}


@router.get("/sites/{site_id}")
async def get_site(site_id: SiteId, principal: Reader, request: Request) -> SiteEntry:
    store, _ = stores(request)
    found = await store.sites(principal.tenant_id, site_id)
    if not found:
        raise not_found("site", site_id, principal.tenant_id)
    return found[0]


@router.delete("/sites/{site_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_site(site_id: SiteId, principal: Admin, request: Request) -> Response:
    """Remove a site without cameras (409 while it has some); its visits stay in reports."""
    store, bucket = stores(request)
    with registry_errors():
        if not await store.delete_site(principal.tenant_id, site_id):
            raise not_found("site", site_id, principal.tenant_id)
    await bucket.delete(subjects.registry_site_key(principal.tenant_id, site_id))
    await audit(request, principal, "site_deleted", f"site/{site_id}", {})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/cameras/{camera_id}")
async def put_camera(
    camera_id: CameraId, body: CameraIn, principal: Admin, request: Request, response: Response
) -> CameraEntry:
    """Create or replace a camera of a registered site (409 for an unknown site)."""
    store, bucket = stores(request)
    with registry_errors():
        entry = CameraEntry.model_validate(
            {"tenant_id": principal.tenant_id, "camera_id": camera_id, **body.model_dump()}
        )
        created = await store.put_camera(entry)
    await bucket.put(subjects.registry_camera_key(principal.tenant_id, camera_id), entry)
    await audit(request, principal, "camera_put", f"camera/{camera_id}", {"site_id": entry.site_id})
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return entry


@router.get("/cameras")
async def list_cameras(principal: Reader, request: Request) -> dict[str, list[CameraEntry]]:
    store, _ = stores(request)
    return {"items": await store.cameras(principal.tenant_id)}


@router.get("/cameras/{camera_id}")
async def get_camera(camera_id: CameraId, principal: Reader, request: Request) -> CameraEntry:
    store, _ = stores(request)
    found = await store.cameras(principal.tenant_id, camera_id)
    if not found:
        raise not_found("camera", camera_id, principal.tenant_id)
    return found[0]


@router.delete("/cameras/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_camera(camera_id: CameraId, principal: Admin, request: Request) -> Response:
    """Remove a camera: ingest refuses its events from then on."""
    store, bucket = stores(request)
    if not await store.delete_camera(principal.tenant_id, camera_id):
        raise not_found("camera", camera_id, principal.tenant_id)
    await bucket.delete(subjects.registry_camera_key(principal.tenant_id, camera_id))
    await audit(request, principal, "camera_deleted", f"camera/{camera_id}", {})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/embedding-models")
async def put_models(body: ModelsIn, principal: Admin, request: Request) -> TenantModelsEntry:
    """The embedding models the tenant's edges may use (each a model Revisit knows); others are refused."""
    unknown = [model for model in body.embedding_models if embedding_dimension(model) is None]
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"unknown embedding models: {', '.join(unknown)}")
    store, bucket = stores(request)
    entry = TenantModelsEntry.model_validate({"tenant_id": principal.tenant_id, **body.model_dump()})
    await store.set_models(entry)
    await bucket.put(subjects.registry_models_key(principal.tenant_id), entry)
    await audit(request, principal, "models_set", "embedding-models", {"embedding_models": entry.embedding_models})
    return entry


@router.get("/embedding-models")
async def get_models(principal: Reader, request: Request) -> dict[str, list[str]]:
    store, _ = stores(request)
    return {"embedding_models": await store.models(principal.tenant_id)}


@router.put("/retention")
async def put_retention(body: RetentionIn, principal: Admin, request: Request) -> RetentionOut:
    """Set how long the tenant's crops, vectors, sightings and visits are kept; the services' nightly retention
    jobs apply it from the registry bucket. Refused (422) when visits would go before their sightings or crops
    outlive theirs."""
    store, bucket = stores(request)
    with registry_errors():
        entry = RetentionPolicyEntry.model_validate({"tenant_id": principal.tenant_id, **body.model_dump()})
    await store.set_retention(entry)
    await bucket.put(subjects.registry_retention_key(principal.tenant_id), entry)
    await audit(request, principal, "retention_policy_set", "retention", body.model_dump())
    return RetentionOut(policy=entry, is_default=False)


@router.get("/retention")
async def get_retention(principal: Reader, request: Request) -> RetentionOut:
    store, _ = stores(request)
    entry = await store.retention(principal.tenant_id)
    if entry is None:
        return RetentionOut(policy=request.app.state.settings.default_retention(principal.tenant_id), is_default=True)
    return RetentionOut(policy=entry, is_default=False)


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(pattern=TOKEN_PATTERN)
    site_id: str = Field(pattern=TOKEN_PATTERN)
    camera_ids: list[Annotated[str, Field(pattern=TOKEN_PATTERN)]] = Field(min_length=1, max_length=64)


class DeviceCreated(BaseModel):
    device_id: str
    nats_url: str
    nats_credentials: str = Field(description="A standard NATS .creds file (user JWT and seed): shown once")


class DeviceOut(BaseModel):
    device_id: str
    site_id: str
    camera_ids: list[str]
    public_key: str
    created_at: datetime
    revoked_at: datetime | None


def nats_authority(request: Request) -> NatsAuthority:
    authority: NatsAuthority | None = request.app.state.nats_authority
    if authority is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the device registry is not configured: identity needs REVISIT_NATS_PUBLIC_URL, REVISIT_NATS_ACCOUNT,"
            " REVISIT_NATS_ACCOUNT_SIGNING_SEED, REVISIT_NATS_OPERATOR_SIGNING_SEED and"
            " REVISIT_NATS_SYSTEM_CREDENTIALS",
        )
    return authority


def device_out(device: Device) -> DeviceOut:
    return DeviceOut(
        device_id=device.device_id,
        site_id=device.site_id,
        camera_ids=device.camera_ids,
        public_key=device.public_key,
        created_at=device.created_at,
        revoked_at=device.revoked_at,
    )


@router.post("/devices", status_code=status.HTTP_201_CREATED)
async def create_device(body: DeviceIn, principal: Admin, request: Request) -> DeviceCreated:
    """An edge box of a site: its NATS credentials may publish only the listed cameras' detections (registered at
    the site) and read only the tenant's staff gallery. The credentials are in this answer only."""
    authority = nats_authority(request)
    scope = DeviceScope(principal.tenant_id, body.site_id, tuple(dict.fromkeys(body.camera_ids)))
    minted = authority.mint(scope, body.device_id)
    devices: DeviceStore = request.app.state.devices
    try:
        await devices.create(scope, body.device_id, minted.public_key)
    except DeviceConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    details: dict[str, object] = {"site_id": body.site_id, "camera_ids": list(scope.camera_ids)}
    await audit(request, principal, "device_created", f"device/{body.device_id}", details)
    return DeviceCreated(device_id=body.device_id, nats_url=authority.public_url, nats_credentials=minted.text)


@router.get("/devices")
async def list_devices(principal: Reader, request: Request) -> dict[str, list[DeviceOut]]:
    devices: DeviceStore = request.app.state.devices
    return {"items": [device_out(d) for d in await devices.list(principal.tenant_id)]}


@router.delete("/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_device(device_id: SiteId, principal: Admin, request: Request) -> Response:
    """Revoke a device: the NATS servers close its connections and refuse new ones."""
    devices: DeviceStore = request.app.state.devices
    revoked = await devices.revoke(principal.tenant_id, device_id, nats_authority(request))
    if revoked is None:
        raise not_found("device", device_id, principal.tenant_id)
    await audit(request, principal, "device_revoked", f"device/{device_id}", {"public_key": revoked.public_key})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
