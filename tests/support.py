"""Helpers the tests share (fixtures live in conftest.py)."""

import asyncio
import os
import uuid
from typing import Any

import nats
import nats.aio.msg
from nats.aio.client import Client as NatsClient

CREDENTIALS_ENV = "REVISIT_NATS_CREDENTIALS"
"""Set by the session's `nats_url` fixture to the `admin` user's `.creds`: what settings and subprocesses use
when given no other user."""


async def connect_admin(url: str, **options: Any) -> NatsClient:
    """A connection to the test server as `admin` (everything in the application account)."""
    return await nats.connect(url, user_credentials=os.environ[CREDENTIALS_ENV], **options)


async def collect_messages(
    connection: NatsClient, subject: str, count: int, timeout: float = 20
) -> list[nats.aio.msg.Msg]:
    """Read `count` messages on `subject` from its stream (an ephemeral consumer from the start)."""
    js = connection.jetstream()
    subscription = await js.pull_subscribe(subject, durable=None)
    received: list[nats.aio.msg.Msg] = []
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while len(received) < count and asyncio.get_running_loop().time() < deadline:
            try:
                batch = await subscription.fetch(count - len(received), timeout=1)
            except TimeoutError:
                continue
            for message in batch:
                await message.ack()
            received.extend(batch)
    finally:
        await subscription.unsubscribe()
    return received


def new_tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def register_camera(identity_url: str, admin_token: str, site: str, camera: str) -> None:
    """Register a site, its camera and the shared model pack's embedder through identity's API, as an admin
    does before installing an edge: ingest refuses events of anything unregistered."""
    import httpx

    from devstack.stack import shared_dir
    from edge.models import EMBEDDERS, resolve_model

    model = resolve_model(shared_dir() / "models", EMBEDDERS["mobilefacenet_arcface_128"]).model_id
    headers = {"authorization": f"Bearer {admin_token}"}
    for path, body in (
        (f"/v1/sites/{site}", {"name": site, "time_zone": "UTC"}),
        (f"/v1/cameras/{camera}", {"site_id": site}),
        ("/v1/embedding-models", {"embedding_models": [model]}),
    ):
        response = httpx.put(f"{identity_url}{path}", json=body, headers=headers, timeout=10)
        assert response.status_code < 300, f"{path}: {response.status_code} {response.text}"


async def known_tenant(connection: NatsClient, policy: dict[str, int] | None = None) -> str:
    """A new tenant in the registry bucket, as identity writes it: its models key (every tenant with data has
    one) and, if given, its retention policy (`<tenant>.retention`)."""
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError

    from schemas import subjects
    from schemas.registry import RetentionPolicyEntry, TenantModelsEntry

    tenant = new_tenant()
    js = connection.jetstream()
    try:
        bucket = await js.key_value(subjects.REGISTRY_BUCKET)
    except BucketNotFoundError:
        bucket = await js.create_key_value(config=KeyValueConfig(bucket=subjects.REGISTRY_BUCKET, history=1))
    models = TenantModelsEntry(tenant_id=tenant, embedding_models=["mobilefacenet_arcface_128@e72a5710"])
    await bucket.put(subjects.registry_models_key(tenant), models.to_json_bytes())
    if policy is not None:
        entry = RetentionPolicyEntry(tenant_id=tenant, **policy)
        await bucket.put(subjects.registry_retention_key(tenant), entry.to_json_bytes())
    return tenant


async def register_site(connection: NatsClient, tenant: str, site: str = "store-1", time_zone: str = "UTC") -> None:
    """Put a site in the registry bucket as identity writes it (`PUT /v1/sites/<site>`)."""
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError

    from schemas import subjects
    from schemas.registry import SiteEntry

    js = connection.jetstream()
    try:
        bucket = await js.key_value(subjects.REGISTRY_BUCKET)
    except BucketNotFoundError:
        bucket = await js.create_key_value(config=KeyValueConfig(bucket=subjects.REGISTRY_BUCKET, history=1))
    entry = SiteEntry(tenant_id=tenant, site_id=site, name=site, time_zone=time_zone)
    await bucket.put(subjects.registry_site_key(tenant, site), entry.to_json_bytes())


async def retention_audits(connection: NatsClient, service: str, tenant: str, count: int) -> list[dict[str, Any]]:
    """The details of the `retention_run` audit entries a service published for a tenant (at least `count`)."""
    import json

    messages = await collect_messages(connection, f"audit.{service}.retention_run.{tenant}", count, timeout=5)
    return [json.loads(message.data)["details"] for message in messages]
