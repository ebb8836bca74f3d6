"""Each of identity's mutating routes, called once with a valid request, writes its audit entry (the list of
routes is `IDENTITY_AUDITED`, which a unit test keeps equal to the routes that exist)."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
from nats.aio.client import Client as NatsClient

from services.identity.bootstrap import Identity
from tests.common.unit.test_mutating_routes_are_audited import IDENTITY_AUDITED
from tests.identity.integration.test_lifecycle import complete_steps, persons_recorded, sightings_of
from tests.support import collect_messages, new_tenant
from tests.support_events import publish_matched

MODEL = "mobilefacenet_arcface_128@e72a5710"


async def test_every_identity_route_that_changes_something_writes_its_audit_entry(
    identity: Identity, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin = {"authorization": f"Bearer {make_token(tenant, ['admin'])}"}
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish_matched(
        nats_connection, sightings_of(tenant, a, 2) + sightings_of(tenant, b, 2, 1) + sightings_of(tenant, c, 2, 2)
    )
    transport = httpx.ASGITransport(app=identity.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://identity", headers=admin) as api:
        await persons_recorded(api, admin, {a: 2, b: 2, c: 2})

        async def settled(response: httpx.Response) -> httpx.Response:
            """Complete the operation's other steps (as matcher and reporting would), so the next may start."""
            assert response.status_code < 300, response.text
            operation = response.json().get("operation_id") if response.content else None
            if operation:
                await complete_steps(
                    nats_connection, tenant, uuid.UUID(operation), ["matcher/vectors", "reporting/visits"]
                )
                for _ in range(100):
                    if (await api.get(f"/v1/operations/{operation}")).json()["status"] == "completed":
                        break
                    await asyncio.sleep(0.05)
            return response

        staff = {"embedding_model": MODEL, "embeddings": [[0.1] * 128]}
        calls: dict[tuple[str, str], Callable[[], Awaitable[httpx.Response]]] = {
            ("PUT", "/v1/sites/{site_id}"): lambda: api.put("/v1/sites/s1", json={"name": "S", "time_zone": "UTC"}),
            ("PUT", "/v1/cameras/{camera_id}"): lambda: api.put("/v1/cameras/c1", json={"site_id": "s1"}),
            ("PUT", "/v1/embedding-models"): lambda: api.put(
                "/v1/embedding-models", json={"embedding_models": [MODEL]}
            ),
            ("DELETE", "/v1/cameras/{camera_id}"): lambda: api.delete("/v1/cameras/c1"),
            ("DELETE", "/v1/sites/{site_id}"): lambda: api.delete("/v1/sites/s1"),
            ("PUT", "/v1/staff/{staff_id}"): lambda: api.put("/v1/staff/clerk", json=staff),
            ("DELETE", "/v1/staff/{staff_id}"): lambda: api.delete("/v1/staff/clerk"),
            ("PUT", "/v1/persons/{person_id}/kind"): lambda: api.put(f"/v1/persons/{c}/kind", json={"kind": "staff"}),
            ("POST", "/v1/persons/{person_id}/not-same"): lambda: api.post(
                f"/v1/persons/{a}/not-same", json={"person_id": str(c)}
            ),
            ("POST", "/v1/persons/{person_id}/merge"): lambda: api.post(
                f"/v1/persons/{a}/merge", json={"person_ids": [str(b)]}
            ),
            ("POST", "/v1/operations/{operation_id}/undo"): lambda: undo_last_merge(),
            ("POST", "/v1/persons/{person_id}/split"): lambda: split_one(),
            ("DELETE", "/v1/persons/{person_id}"): lambda: api.delete(f"/v1/persons/{c}"),
            ("PUT", "/v1/retention"): lambda: api.put(
                "/v1/retention",
                json={"crops_days": 20, "vectors_unseen_days": 200, "sightings_days": 300, "visits_days": 300},
            ),
        }
        merges: list[str] = []

        async def undo_last_merge() -> httpx.Response:
            return await api.post(f"/v1/operations/{merges[-1]}/undo")

        async def split_one() -> httpx.Response:
            sighting = (await api.get(f"/v1/persons/{a}")).json()["sightings"][0]["sighting_id"]
            return await api.post(f"/v1/persons/{a}/split", json={"sighting_ids": [sighting]})

        assert set(calls) == set(IDENTITY_AUDITED)  # every audited route is exercised here
        for route, call in calls.items():
            subscription = await nats_connection.subscribe(f"audit.identity.*.{tenant}")
            response = await settled(await call())
            if route[1].endswith("/merge"):
                merges.append(response.json()["operation_id"])
            actions = []
            while IDENTITY_AUDITED[route] not in actions:
                message = await subscription.next_msg(timeout=10)
                actions.append(message.subject.split(".")[2])
            await subscription.unsubscribe()
    assert len(await collect_messages(nats_connection, f"audit.identity.*.{tenant}", 200, timeout=2)) >= len(calls)
