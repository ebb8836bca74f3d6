"""Ingest built through its own bootstrap against the session's real NATS and S3 server."""

import json
from collections.abc import AsyncIterator, Callable

import pytest

from schemas import FaceDetected
from schemas.export import EXAMPLES_DIR
from schemas.ids import new_event_id
from services.ingest.bootstrap import Ingest, bootstrap
from services.ingest.config import IngestSettings


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


def _detected(tenant: str, **changes: object) -> FaceDetected:
    example = json.loads((EXAMPLES_DIR / "FaceDetected.v1.json").read_text())
    example |= {"tenant_id": tenant, "event_id": str(new_event_id())} | changes
    return FaceDetected.model_validate(example)


@pytest.fixture
def detected() -> Callable[..., FaceDetected]:
    """The schema's example FaceDetected for `tenant` with a fresh event id and any field changed."""
    return _detected
