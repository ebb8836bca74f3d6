"""Identity's staff gallery routes against real NATS KV: admins enrol and remove, edges read the entry."""

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient

from schemas import AuditEntryRecorded, subjects
from schemas.base import Event
from services.common.auth import TokenVerifier
from services.common.bus import declare_streams
from services.identity.adapters.staff_gallery import StaffGalleryStore
from services.identity.staff import router
from tests.support import collect_messages, new_tenant

MODEL = "mobilefacenet_arcface_128@e72a5710"


@pytest.fixture
async def client(nats_connection: NatsClient, keys) -> AsyncIterator[httpx.AsyncClient]:
    """The staff router as identity's bootstrap wires it: a store, a publisher and the token verifier."""
    await declare_streams(nats_connection, [subjects.AUDIT_STREAM])
    js = nats_connection.jetstream()

    async def publish(subject: str, event: Event) -> None:
        await js.publish(subject, event.to_json_bytes(), headers={"Nats-Msg-Id": str(event.event_id)})

    app = FastAPI()
    app.state.staff_gallery = await StaffGalleryStore.open(nats_connection)
    app.state.publish = publish
    app.state.token_verifier = TokenVerifier(keys.public_pem, "revisit", "revisit")
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://identity") as client:
        yield client


async def test_admin_enrols_and_removes_staff_and_each_change_is_audited(
    client: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin = {"authorization": f"Bearer {make_token(tenant, ['admin'])}"}
    body = {"display_name": "Jane", "embedding_model": MODEL, "embeddings": [[0.1] * 128, [0.2] * 128]}

    response = await client.put("/v1/staff/jane", json=body, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["vectors"] == 2 and response.json()["revision"] > 0
    store = await StaffGalleryStore.open(nats_connection)
    entry = await store.get(tenant, "jane")
    assert entry is not None and entry.tenant_id == tenant and entry.display_name == "Jane"
    assert entry.embeddings[1] == [0.2] * 128

    assert (await client.delete("/v1/staff/jane", headers=admin)).status_code == 204
    assert await store.get(tenant, "jane") is None
    assert (await client.delete("/v1/staff/jane", headers=admin)).status_code == 404

    audited = await collect_messages(nats_connection, f"audit.identity.*.{tenant}", 2, timeout=5)
    records = [AuditEntryRecorded.model_validate_json(message.data) for message in audited]
    assert [(r.action, r.resource, r.actor) for r in records] == [
        ("staff_enrolled", "staff/jane", "tester"),
        ("staff_removed", "staff/jane", "tester"),
    ]


async def test_only_admins_write_and_bad_bodies_are_refused(
    client: httpx.AsyncClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    body = {"embedding_model": MODEL, "embeddings": [[0.1] * 128]}
    analyst = {"authorization": f"Bearer {make_token(tenant, ['analyst'])}"}
    admin = {"authorization": f"Bearer {make_token(tenant, ['admin'])}"}
    assert (await client.put("/v1/staff/jane", json=body)).status_code == 401
    assert (await client.put("/v1/staff/jane", json=body, headers=analyst)).status_code == 403
    assert (await client.put("/v1/staff/Jane%20Doe", json=body, headers=admin)).status_code == 422
    too_short = {"embedding_model": MODEL, "embeddings": [[0.1] * 16]}
    assert (await client.put("/v1/staff/jane", json=too_short, headers=admin)).status_code == 422


async def test_vectors_of_an_unknown_model_or_the_wrong_dimension_are_refused_with_the_reason(
    client: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    """A 64-number entry under the 128-d model, or any under an unknown model, could never match a face."""
    tenant = new_tenant()
    admin = {"authorization": f"Bearer {make_token(tenant, ['admin'])}"}
    wrong_dimension = {"embedding_model": MODEL, "embeddings": [[0.1] * 128, [0.1] * 64]}
    unknown_model = {"embedding_model": "my_model@0123abcd", "embeddings": [[0.1] * 128]}
    no_checksum = {"embedding_model": "mobilefacenet_arcface_128", "embeddings": [[0.1] * 128]}

    refused = await client.put("/v1/staff/jane", json=wrong_dimension, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["detail"] == f"embeddings [1] have 64 numbers, but {MODEL} vectors have 128"
    for body in (unknown_model, no_checksum):
        refused = await client.put("/v1/staff/jane", json=body, headers=admin)
        assert refused.status_code == 422 and "unknown embedding model" in refused.json()["detail"]
    assert await (await StaffGalleryStore.open(nats_connection)).get(tenant, "jane") is None

    wider = {"embedding_model": "arcface_r50_w600k_512@9a8b7c6d", "embeddings": [[0.1] * 512]}
    assert (await client.put("/v1/staff/jane", json=wider, headers=admin)).status_code == 200
