"""Ingest built through its own bootstrap against the session's real NATS and S3 server."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from schemas import FaceDetected, subjects
from schemas.export import EXAMPLES_DIR
from schemas.ids import new_event_id
from schemas.registry import CameraEntry, SiteEntry, TenantModelsEntry
from services.ingest.bootstrap import Ingest, bootstrap
from services.ingest.config import IngestSettings
from tests.support import new_tenant


@pytest.fixture(scope="module")
async def ingest(
    nats_url: str, nats_users, s3_endpoint: str, s3_credentials: tuple[str, str], keys
) -> AsyncIterator[Ingest]:
    settings = IngestSettings(
        nats_url=nats_url,
        nats_credentials=nats_users["ingest"],
        s3_endpoint_url=s3_endpoint,
        s3_access_key=s3_credentials[0],
        s3_secret_key=s3_credentials[1],
        jwt_public_key=keys.public_pem,
        environment="test",
    )
    async with bootstrap(settings) as service:
        await service.broker.start()
        yield service


async def registered_tenant(connection: NatsClient, site: str = "store-1", camera: str = "entrance") -> str:
    """A new tenant with the example event's site, camera and model in the registry, as identity writes them."""
    tenant = new_tenant()
    example = json.loads((EXAMPLES_DIR / "FaceDetected.v1.json").read_text())
    bucket = await open_registry_bucket(connection)
    values = {
        subjects.registry_site_key(tenant, site): SiteEntry(tenant_id=tenant, site_id=site, name=site, time_zone="UTC"),
        subjects.registry_camera_key(tenant, camera): CameraEntry(tenant_id=tenant, camera_id=camera, site_id=site),
        subjects.registry_models_key(tenant): TenantModelsEntry(
            tenant_id=tenant, embedding_models=[example["embedding_model"]]
        ),
    }
    for key, value in values.items():
        await bucket.put(key, value.to_json_bytes())
    await asyncio.sleep(0.2)  # ingest's mirror applies the change
    return tenant


async def open_registry_bucket(connection: NatsClient) -> KeyValue:
    js = connection.jetstream()
    try:
        return await js.key_value(subjects.REGISTRY_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(config=KeyValueConfig(bucket=subjects.REGISTRY_BUCKET, history=1))


def _detected(tenant: str, **changes: object) -> FaceDetected:
    example = json.loads((EXAMPLES_DIR / "FaceDetected.v1.json").read_text())
    now = datetime.now(UTC).isoformat()
    example |= {"tenant_id": tenant, "event_id": str(new_event_id()), "captured_at": now, "occurred_at": now}
    return FaceDetected.model_validate(example | changes)


@pytest.fixture
def detected() -> Callable[..., FaceDetected]:
    """The schema's example FaceDetected for `tenant`, captured now (ingest refuses sightings older than the
    edges' outbox keeps them), with a fresh event id and any field changed."""
    return _detected
