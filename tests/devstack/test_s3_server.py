"""The dev S3 server through aioboto3, as the services use it: objects, listing, presigned GETs, signatures,
concurrent uploads and a kill -9 followed by a restart on the same data."""

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.infra import S3_ACCESS_KEY, S3_SECRET_KEY, free_port, start_s3
from services.ingest.adapters.s3 import CropStore

JPEG = b"\xff\xd8\xff" + bytes(range(256)) * 40


def client(endpoint: str, secret: str = S3_SECRET_KEY) -> Any:
    session = aioboto3.Session(aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=secret, region_name="us-east-1")
    return session.client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4"))


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    url, process = start_s3(tmp_path / "s3", tmp_path / "logs", free_port())
    yield url
    process.stop()


@pytest.fixture
async def store(endpoint: str) -> AsyncIterator[CropStore]:
    async with CropStore(endpoint, "crops", "us-east-1", S3_ACCESS_KEY, S3_SECRET_KEY) as crops:
        await crops.ensure_bucket()
        await crops.ensure_bucket()  # the second start finds it
        yield crops


async def test_objects_round_trip_and_list_by_prefix_and_delimiter(store: CropStore) -> None:
    keys = [f"acme/store-{site}/2025/01/{day:02d}/{n}.jpg" for site in (1, 2) for day in (1, 2) for n in range(3)]
    for key in keys:
        await store.put_crop(key, JPEG + key.encode())
    assert await store.get_crop(keys[4]) == JPEG + keys[4].encode()
    assert await store.child_prefixes("acme/") == ["acme/store-1/", "acme/store-2/"]
    days = await store.child_prefixes("acme/store-1/2025/01/")
    assert days == ["acme/store-1/2025/01/01/", "acme/store-1/2025/01/02/"]
    assert await store.keys_under("acme/store-2/") == sorted(k for k in keys if k.startswith("acme/store-2/"))
    await store.delete_crops([keys[0], "acme/never-stored.jpg"])
    await store.delete_crop(keys[1])
    assert await store.keys_under("acme/store-1/2025/01/01/") == [keys[2]]
    with pytest.raises(ClientError) as missing:
        await store.get_crop(keys[0])
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


async def test_listing_pages_continue_after_the_last_key(store: CropStore) -> None:
    keys = sorted(f"t/s/2025/02/03/{n:05d}.jpg" for n in range(2345))
    limit = asyncio.Semaphore(64)  # as ingest's workers: 2,345 at once would starve the first connects' timers

    async def put(key: str) -> None:
        async with limit:
            await store.put_crop(key, JPEG)

    await asyncio.gather(*(put(key) for key in keys))
    pages = [page async for page in store.key_pages("t/")]
    assert [len(page) for page in pages] == [1000, 1000, 345]
    assert [key for page in pages for key in page] == keys


async def test_concurrent_uploads_survive_kill_and_restart(tmp_path: Path) -> None:
    """The failure moto's recorder had: concurrent uploads, then a restart must find every object intact."""
    port = free_port()
    endpoint, process = start_s3(tmp_path / "s3", tmp_path / "logs", port)
    bodies = {f"c/{n}.jpg": JPEG + str(n).encode() * (n % 50 + 1) for n in range(400)}
    async with client(endpoint) as s3:
        await s3.create_bucket(Bucket="crops")
        await asyncio.gather(*(s3.put_object(Bucket="crops", Key=k, Body=b) for k, b in bodies.items()))
    process.process.send_signal(signal.SIGKILL)
    process.stop()
    endpoint, process = start_s3(tmp_path / "s3", tmp_path / "logs", port)
    try:
        async with client(endpoint) as s3:
            for key, body in bodies.items():
                response = await s3.get_object(Bucket="crops", Key=key)
                async with response["Body"] as stream:
                    assert await stream.read() == body
    finally:
        process.stop()


async def test_presigned_get_and_refused_requests(store: CropStore, endpoint: str) -> None:
    await store.put_crop("p/q r+s.jpg", JPEG)
    async with client(endpoint) as s3:
        url = await s3.generate_presigned_url("get_object", Params={"Bucket": "crops", "Key": "p/q r+s.jpg"})
        expired = await s3.generate_presigned_url(
            "get_object", Params={"Bucket": "crops", "Key": "p/q r+s.jpg"}, ExpiresIn=-10
        )
    async with httpx.AsyncClient() as browser:
        fetched = await browser.get(url)
        assert (fetched.status_code, fetched.content, fetched.headers["content-type"]) == (200, JPEG, "image/jpeg")
        assert (await browser.get(url.replace("q%20r", "q%20x"))).status_code == 403  # the signature covers the key
        assert (await browser.get(expired)).status_code == 403
        assert (await browser.get(f"{endpoint}/crops/p/q%20r%2Bs.jpg")).status_code == 403  # anonymous
    async with client(endpoint, secret="wrong") as s3:
        with pytest.raises(ClientError) as refused:
            await s3.put_object(Bucket="crops", Key="p/x.jpg", Body=JPEG)
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert await store.keys_under("p/") == ["p/q r+s.jpg"]
