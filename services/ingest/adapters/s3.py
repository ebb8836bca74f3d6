"""The crops bucket (MinIO in production, the dev S3 server in tests and `make dev`): through aioboto3, except
the one call made per face, storing its crop, which `sigv4.PutSigner` signs and aiohttp sends.

Why the exception: aiobotocore spends about 2.4 ms of CPU on every call (its endpoint rules are evaluated per
object key, its user agent rebuilt), which alone would cap ingest at a few hundred crops a second per core; the
PUT signed by botocore's signer cost about a third of that (docs/BENCHMARKS.md, "Embedded S3"), and that signer
was still a fifth of ingest's CPU in the pipeline profile, hence our own (sigv4.py). Same request on the wire,
path-style, as identity's presigned links already are."""

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import ClientError

from services.ingest.adapters.sigv4 import PutSigner


class CropDeletionFailed(RuntimeError):
    """S3 refused to delete some crops (a transient or permission error): the batch is retried."""


class CropNotStored(RuntimeError):
    """S3 answered a crop's PUT with an error (the message is retried with backoff, then dead-lettered)."""


class CropStore:
    """Stores and deletes face crops; the bucket is created at start if it does not exist."""

    def __init__(
        self, endpoint_url: str, bucket: str, region: str, access_key: str, secret_key: str, connections: int = 10
    ) -> None:
        self._bucket, self._connections = bucket, connections
        self._session = aioboto3.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self._client_context: Any = None
        self._signer = PutSigner(access_key, secret_key, region)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        config = Config(
            connect_timeout=3,
            read_timeout=10,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=self._connections,  # one per crop stored at once, or puts queue for a connection
        )
        self._client_context = self._session.client("s3", endpoint_url=self._endpoint_url, config=config)
        self._client = await self._client_context.__aenter__()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=3, sock_read=10
            ),  # waiting for a connection is not a fault
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.close()
        await self._client_context.__aexit__(exc_type, exc, tb)

    async def ensure_bucket(self) -> None:
        try:
            await self._client.head_bucket(Bucket=self._bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            await self._client.create_bucket(Bucket=self._bucket)

    async def put_crop(self, key: str, jpeg: bytes) -> None:
        """Idempotent: the key is derived from the event id, so a redelivery overwrites the same object. Raises
        CropNotStored with S3's answer if it is not a success."""
        assert self._http is not None, "use the store inside `async with`"
        url = f"{self._endpoint_url.rstrip('/')}/{self._bucket}/{quote(key, safe='/-_.~')}"
        headers = self._signer.headers(url, hashlib.sha256(jpeg).hexdigest(), datetime.now(UTC))
        async with self._http.put(url, data=jpeg, headers={**headers, "Content-Type": "image/jpeg"}) as response:
            if response.status != 200:
                answer = (await response.text())[:500]
                raise CropNotStored(f"PUT {key}: S3 answered {response.status}: {answer}")

    async def get_crop(self, key: str) -> bytes:
        response = await self._client.get_object(Bucket=self._bucket, Key=key)
        async with response["Body"] as body:
            data: bytes = await body.read()
            return data

    async def delete_crop(self, key: str) -> None:
        await self._client.delete_object(Bucket=self._bucket, Key=key)

    async def delete_crops(self, keys: list[str]) -> None:
        """Delete these objects in one request (S3 takes up to 1000). A missing key counts as deleted, as S3
        itself answers; any per-key error raises, so the caller retries the whole (idempotent) batch."""
        if not keys:
            return
        objects = [{"Key": key} for key in keys]
        response = await self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": objects, "Quiet": True})
        errors = [error for error in response.get("Errors", []) if error.get("Code") != "NoSuchKey"]
        if errors:
            first = errors[0]
            raise CropDeletionFailed(f"{len(errors)} crops not deleted, e.g. {first.get('Key')}: {first.get('Code')}")

    async def keys_under(self, prefix: str) -> list[str]:
        """Object keys starting with `prefix` (a tenant's or a site's crops), for retention, checks and tests."""
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    async def child_prefixes(self, prefix: str) -> list[str]:
        """The next level of `prefix` ("acme/" -> "acme/store-1/", ...), listed with a delimiter, not key by key."""
        children: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix, Delimiter="/"):
            children.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
        return children

    async def key_pages(self, prefix: str) -> AsyncIterator[list[str]]:
        """The keys under `prefix`, a page (at most 1000, one delete request) at a time, so a year of crops is
        never held in memory. Deleting a page before reading the next is safe: pages continue after the last key."""
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}):
            keys = [item["Key"] for item in page.get("Contents", [])]
            if keys:
                yield keys
