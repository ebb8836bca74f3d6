"""The matcher's retention job on the real NATS and a Milvus Lite file, with a fake "today"."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from devstack.stack import SigningKeys
from schemas import PersonKind
from services.common.retention import RunLease
from services.matcher.__main__ import retention
from services.matcher.adapters.milvus import FaceVectorStore, StoredVector
from services.matcher.config import MatcherSettings
from tests.support import known_tenant, retention_audits

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
MODELS = {"mobilefacenet_arcface_128@e72a5710": 128, "sface@0123abcd": 128}


@pytest.fixture
def settings(nats_url: str, tmp_path: Path, keys: SigningKeys) -> MatcherSettings:
    return MatcherSettings(
        nats_url=nats_url, milvus_uri=str(tmp_path / "faces.db"), environment="test", jwt_public_key=keys.public_pem
    )


def vector(tenant: str, person: uuid.UUID, days_ago: int) -> StoredVector:
    captured = NOW - timedelta(days=days_ago)
    return StoredVector(
        uuid.uuid4(), person, tenant, PersonKind.CUSTOMER, int(captured.timestamp() * 1000), [1.0] + [0.0] * 127
    )


async def stored_persons(store: FaceVectorStore, tenant: str) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for part in await store.all_rows(tenant):
        for row in part.rows:
            counts[row.person_id] = counts.get(row.person_id, 0) + 1
    return counts


async def test_vectors_of_unseen_persons_go_in_every_collection(
    settings: MatcherSettings, nats_connection: NatsClient
) -> None:
    default_tenant = await known_tenant(nats_connection)  # 365 days
    strict = {"crops_days": 30, "vectors_unseen_days": 30, "sightings_days": 400, "visits_days": 400}
    strict_tenant = await known_tenant(nats_connection, strict)
    gone, seen_lately, in_two_models = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    strict_gone, strict_kept = uuid.uuid4(), uuid.uuid4()
    first_model, second_model = MODELS
    store = FaceVectorStore(settings.milvus_uri, "", settings.collection_prefix)
    await store.connect()
    await store.insert(first_model, 128, [vector(default_tenant, gone, 400), vector(default_tenant, gone, 366)])
    await store.insert(
        first_model, 128, [vector(default_tenant, seen_lately, 900), vector(default_tenant, seen_lately, 3)]
    )
    await store.insert(first_model, 128, [vector(default_tenant, in_two_models, 500)])
    await store.insert(second_model, 128, [vector(default_tenant, in_two_models, 10)])  # seen lately in another model
    await store.insert(
        first_model, 128, [vector(strict_tenant, strict_gone, 31), vector(strict_tenant, strict_kept, 29)]
    )
    await store.close()  # Milvus Lite: one process (here one client) per file

    first = await retention(settings, NOW)
    second = await retention(settings, NOW)

    assert first.deleted[default_tenant] == {"vectors": 2, "persons": 1}
    assert first.deleted[strict_tenant] == {"vectors": 1, "persons": 1}
    assert second.deleted[default_tenant] == {"vectors": 0, "persons": 0}
    store = FaceVectorStore(settings.milvus_uri, "", settings.collection_prefix)
    await store.connect()
    try:
        assert await stored_persons(store, default_tenant) == {seen_lately: 2, in_two_models: 2}
        assert await stored_persons(store, strict_tenant) == {strict_kept: 1}
    finally:
        await store.close()
    audits = await retention_audits(nats_connection, "matcher", strict_tenant, 2)
    assert [a["deleted"] for a in audits] == [{"vectors": 1, "persons": 1}, {"vectors": 0, "persons": 0}]


async def test_a_second_runner_does_nothing_while_one_works(
    settings: MatcherSettings, nats_connection: NatsClient
) -> None:
    lease = await RunLease.open(nats_connection)
    async with lease.hold("matcher") as held:
        assert held
        assert not (await retention(settings, NOW)).ran
    assert (await retention(settings, NOW)).ran
