"""The extra lane: the adapters against a real MinIO and a Milvus standalone server (testcontainers).

It runs where a Docker engine answers and is skipped, with the reason, everywhere else; the main suite
never needs Docker (it uses Milvus Lite and the dev S3 server (devstack/s3_server.py) through the same adapter code)."""

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from schemas import PersonKind
from services.ingest.adapters.s3 import CropStore
from services.matcher.adapters.milvus import FaceVectorStore, StoredVector


def docker_engine_reason() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as error:  # any failure means there is no usable engine here
        return f"no Docker engine answers ({type(error).__name__}): the testcontainers lane is skipped"
    return None


pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(docker_engine_reason() is not None, reason=str(docker_engine_reason())),
]


@pytest.fixture(scope="module")
def minio() -> Iterator[dict[str, str]]:
    from testcontainers.community.minio import MinioContainer

    with MinioContainer() as container:
        yield container.get_config()


@pytest.fixture(scope="module")
def milvus_url() -> Iterator[str]:
    from testcontainers.community.milvus import MilvusContainer

    with MilvusContainer(image="milvusdb/milvus:v2.5.4") as container:
        yield container.get_connection_url()


async def test_crop_store_on_minio(minio: dict[str, str]) -> None:
    store = CropStore(
        f"http://{minio['endpoint']}", "revisit-crops", "us-east-1", minio["access_key"], minio["secret_key"]
    )
    async with store:
        await store.ensure_bucket()
        await store.ensure_bucket()  # idempotent
        await store.put_crop("t/s/2026/11/02/x.jpg", b"\xff\xd8\xffdata")
        assert await store.get_crop("t/s/2026/11/02/x.jpg") == b"\xff\xd8\xffdata"
        await store.delete_crop("t/s/2026/11/02/x.jpg")


async def test_vector_store_on_milvus_server_sees_its_own_inserts(milvus_url: str) -> None:
    store = FaceVectorStore(milvus_url, "", f"faces{uuid.uuid4().hex[:6]}")
    await store.connect()
    try:
        rng = np.random.default_rng(1)
        vector = rng.normal(size=128)
        vector = (vector / np.linalg.norm(vector)).astype(np.float32)
        person = uuid.uuid4()
        sighting = uuid.uuid4()
        await store.insert(
            "model@1", 128, [StoredVector(sighting, person, "tenant-a", PersonKind.CUSTOMER, 0, vector.tolist())]
        )
        [[best]] = await store.candidates("model@1", 128, "tenant-a", [vector.tolist()])
        assert best.person_id == person and best.similarity > 0.99
        [other_tenant] = await store.candidates("model@1", 128, "tenant-b", [vector.tolist()])
        assert other_tenant == []
        assert sighting in await store.find_sightings("model@1", 128, "tenant-a", [sighting])
    finally:
        await store.close()
