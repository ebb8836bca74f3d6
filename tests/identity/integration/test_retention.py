"""The retention policy through identity's API (Postgres, mirrored to the registry bucket, audited) and identity's
retention job on its sightings, on real Postgres and NATS with a fake "today"."""

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from nats.aio.client import Client as NatsClient

from schemas import subjects
from schemas.registry import RetentionPolicyEntry
from services.common.retention import RunLease
from services.identity.__main__ import retention
from services.identity.bootstrap import Identity, bootstrap
from services.identity.config import IdentitySettings
from tests.support import collect_messages, known_tenant, new_tenant, retention_audits
from tests.support_events import matched

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
POLICY = {"crops_days": 20, "vectors_unseen_days": 90, "sightings_days": 100, "visits_days": 500}


@pytest.fixture(scope="module")
def settings(nats_url: str, postgres_dsn: str, keys, s3_endpoint, s3_credentials) -> IdentitySettings:  # type: ignore[no-untyped-def]
    return IdentitySettings(
        nats_url=nats_url,
        postgres_dsn=postgres_dsn,
        jwt_public_key=keys.public_pem,
        environment="test",
        s3_endpoint_url=s3_endpoint,
        s3_access_key=s3_credentials[0],
        s3_secret_key=s3_credentials[1],
    )


@pytest.fixture(scope="module")
async def identity(settings: IdentitySettings) -> AsyncIterator[Identity]:
    async with bootstrap(settings) as service:
        yield service


@pytest.fixture
async def api(identity: Identity) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=identity.app), base_url="http://identity") as client:
        yield client


async def test_policy_is_validated_stored_mirrored_and_audited(
    api: httpx.AsyncClient, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin = {"authorization": f"Bearer {make_token(tenant, ['admin'])}"}
    viewer = {"authorization": f"Bearer {make_token(tenant, ['viewer'])}"}

    default = (await api.get("/v1/retention", headers=viewer)).json()
    assert default["is_default"] and default["policy"]["crops_days"] == 30 and default["policy"]["visits_days"] == 400
    assert (await api.put("/v1/retention", json=POLICY, headers=viewer)).status_code == 403
    early_visits = await api.put("/v1/retention", json={**POLICY, "visits_days": 99}, headers=admin)
    assert early_visits.status_code == 422 and "visits_days" in early_visits.json()["detail"]
    assert (await api.put("/v1/retention", json={**POLICY, "crops_days": 101}, headers=admin)).status_code == 422
    assert (await api.put("/v1/retention", json={**POLICY, "crops_days": 0}, headers=admin)).status_code == 422
    assert (await api.put("/v1/retention", json=POLICY, headers=admin)).status_code == 200

    stored = (await api.get("/v1/retention", headers=viewer)).json()
    assert not stored["is_default"] and {k: stored["policy"][k] for k in POLICY} == POLICY
    bucket = await nats_connection.jetstream().key_value(subjects.REGISTRY_BUCKET)
    mirrored = RetentionPolicyEntry.model_validate_json((await bucket.get(f"{tenant}.retention")).value or b"")
    assert mirrored.model_dump(include=set(POLICY)) == POLICY
    [audited] = await collect_messages(nats_connection, f"audit.identity.retention_policy_set.{tenant}", 1)
    assert json.loads(audited.data)["details"] == POLICY


async def test_job_deletes_old_sightings_once_and_keeps_the_persons(
    settings: IdentitySettings, identity: Identity, nats_connection: NatsClient
) -> None:
    tenant = await known_tenant(nats_connection, POLICY)
    person = uuid.uuid4()
    for days_ago in (300, 101, 99, 1):
        event = matched(tenant, person, NOW - timedelta(days=days_ago), is_new=days_ago == 300)
        await identity.directory.record_sighting(event)

    first = await retention(settings, NOW)
    second = await retention(settings, NOW)

    assert first.deleted[tenant] == {"sightings": 2} and second.deleted[tenant] == {"sightings": 0}
    kept = await identity.directory.list_sightings(tenant, person, 10)
    assert sorted(s.captured_at for s in kept) == [NOW - timedelta(days=99), NOW - timedelta(days=1)]
    still = await identity.directory.get_person(tenant, person)
    assert still is not None and still.sightings == 2
    audits = await retention_audits(nats_connection, "identity", tenant, 2)
    assert [a["deleted"] for a in audits] == [{"sightings": 2}, {"sightings": 0}]


async def test_one_runner_at_a_time(settings: IdentitySettings, nats_connection: NatsClient) -> None:
    lease = await RunLease.open(nats_connection)
    async with lease.hold("identity") as held:
        assert held
        assert not (await retention(settings, NOW)).ran
    assert (await retention(settings, NOW)).ran
