"""The registry through identity's API, on real Postgres and NATS: sites, cameras and models, their
mirror in the `registry` KV bucket that ingest and reporting watch, and the audit of every change."""

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError

from schemas import subjects
from schemas.registry import CameraEntry, SiteEntry, TenantModelsEntry
from services.identity.bootstrap import Identity
from tests.support import collect_messages, new_tenant

MODEL = "mobilefacenet_arcface_128@e72a5710"


@pytest.fixture
async def api(identity: Identity) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=identity.app), base_url="http://identity") as client:
        yield client


async def kv_value(connection: NatsClient, key: str) -> bytes | None:
    bucket = await connection.jetstream().key_value(subjects.REGISTRY_BUCKET)
    try:
        return (await bucket.get(key)).value
    except KeyNotFoundError:
        return None


async def test_sites_cameras_and_models_are_kept_mirrored_and_audited(
    api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin = {"authorization": f"Bearer {make_token(tenant, ['admin'])}"}
    viewer = {"authorization": f"Bearer {make_token(tenant, ['viewer'])}"}
    site = {
        "name": "Main Street",
        "time_zone": "America/New_York",
        "opening_hours": {"mon": [{"opens": "09:00", "closes": "19:00"}]},
    }

    assert (await api.put("/v1/sites/store-1", json=site, headers=viewer)).status_code == 403
    bad = await api.put("/v1/sites/store-1", json={**site, "time_zone": "Mars/Olympus"}, headers=admin)
    assert bad.status_code == 422 and "IANA" in bad.json()["detail"]
    assert (await api.put("/v1/sites/store-1", json=site, headers=admin)).status_code == 201
    assert (await api.put("/v1/sites/store-1", json={**site, "name": "Main St."}, headers=admin)).status_code == 200
    mirrored = SiteEntry.model_validate_json(await kv_value(nats_connection, f"{tenant}.site.store-1") or b"")
    assert (mirrored.name, mirrored.time_zone) == ("Main St.", "America/New_York")
    assert (await api.get("/v1/sites/store-1", headers=viewer)).json()["opening_hours"]["mon"][0]["opens"] == "09:00:00"

    orphan = await api.put("/v1/cameras/door", json={"site_id": "store-9"}, headers=admin)
    assert orphan.status_code == 409 and "store-9" in orphan.json()["detail"]
    assert (await api.put("/v1/cameras/door", json={"site_id": "store-1"}, headers=admin)).status_code == 201
    camera = CameraEntry.model_validate_json(await kv_value(nats_connection, f"{tenant}.camera.door") or b"")
    assert camera.site_id == "store-1"
    assert (await api.delete("/v1/sites/store-1", headers=admin)).status_code == 409  # it has a camera

    unknown = await api.put(
        "/v1/embedding-models", json={"embedding_models": ["someone_elses@00000000"]}, headers=admin
    )
    assert unknown.status_code == 422
    assert (await api.put("/v1/embedding-models", json={"embedding_models": [MODEL]}, headers=admin)).status_code == 200
    models = TenantModelsEntry.model_validate_json(await kv_value(nats_connection, f"{tenant}.models") or b"")
    assert models.embedding_models == [MODEL]

    assert (await api.delete("/v1/cameras/door", headers=admin)).status_code == 204
    assert await kv_value(nats_connection, f"{tenant}.camera.door") is None
    assert (await api.delete("/v1/sites/store-1", headers=admin)).status_code == 204
    assert (await api.get("/v1/sites/store-1", headers=viewer)).status_code == 404
    assert (await api.get("/v1/sites", headers=viewer)).json()["items"] == []

    audited = await collect_messages(nats_connection, f"audit.identity.*.{tenant}", 8, timeout=5)
    assert sorted(m.subject.split(".")[2] for m in audited) == sorted(
        ["site_put", "site_put", "camera_put", "models_set", "camera_deleted", "site_deleted"]
    )


async def test_one_tenant_never_sees_another_tenants_registry(
    api: httpx.AsyncClient, make_token: Callable[..., str]
) -> None:
    first, second = new_tenant(), new_tenant()
    site = {"name": "Shop", "time_zone": "Europe/Paris"}
    await api.put("/v1/sites/shop", json=site, headers={"authorization": f"Bearer {make_token(first, ['admin'])}"})
    other = {"authorization": f"Bearer {make_token(second, ['admin'])}"}
    assert (await api.get("/v1/sites/shop", headers=other)).status_code == 404
    assert (await api.put("/v1/cameras/cam", json={"site_id": "shop"}, headers=other)).status_code == 409


async def test_a_nul_in_a_name_or_nan_in_a_vector_is_refused_with_the_reason_not_a_500(
    api: httpx.AsyncClient, make_token: Callable[..., str]
) -> None:
    """Found by the fuzz lane: Postgres text cannot hold NUL (asyncpg raised), and a NaN made FastAPI's own 422
    fail to render. Both are refused at the edge, naming the field."""
    admin = {"authorization": f"Bearer {make_token(new_tenant(), ['admin'])}"}
    site = await api.put("/v1/sites/s1", json={"name": "Sh\x00p", "time_zone": "UTC"}, headers=admin)
    assert site.status_code == 422 and "contains NUL" in site.text and site.json()["detail"][0]["loc"][-1] == "name"
    assert (await api.put("/v1/sites/s1", json={"name": "Shop", "time_zone": "UTC"}, headers=admin)).is_success
    camera = await api.put("/v1/cameras/door", json={"site_id": "s1", "name": "do\x00r"}, headers=admin)
    assert camera.status_code == 422 and "contains NUL" in camera.text
    nan_vector = b'{"embedding_model": "mobilefacenet_arcface_128@e72a5710", "embeddings": [[NaN]]}'
    staff = await api.put("/v1/staff/jane", content=nan_vector, headers=admin | {"content-type": "application/json"})
    assert staff.status_code == 422 and "finite number" in staff.text


async def test_an_opening_hour_given_as_a_number_is_refused(
    api: httpx.AsyncClient, make_token: Callable[..., str]
) -> None:
    """Found by the fuzz lane: lax validation read `"opens": 0` as midnight and stored it."""
    admin = {"authorization": f"Bearer {make_token(new_tenant(), ['admin'])}"}
    body = {"name": "Shop", "time_zone": "UTC", "opening_hours": {"mon": [{"opens": 0, "closes": "18:00"}]}}
    refused = await api.put("/v1/sites/s1", json=body, headers=admin)
    assert refused.status_code == 422 and "time of day as text" in refused.text
