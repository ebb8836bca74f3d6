"""The crops bucket, through aioboto3 (MinIO in production, any S3 API in tests)."""

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError


class CropDeletionFailed(RuntimeError):
    """S3 refused to delete some crops (a transient or permission error): the batch is retried."""


class CropStore:
    """Stores and deletes face crops; the bucket is created at start if it does not exist."""

    def __init__(self, endpoint_url: str, bucket: str, region: str, access_key: str, secret_key: str) -> None:
        self._bucket = bucket
        self._session = aioboto3.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self._client_context: Any = None

    async def __aenter__(self) -> Self:
        config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
        self._client_context = self._session.client("s3", endpoint_url=self._endpoint_url, config=config)
        self._client = await self._client_context.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client_context.__aexit__(exc_type, exc, tb)

    async def ensure_bucket(self) -> None:
        try:
            await self._client.head_bucket(Bucket=self._bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            await self._client.create_bucket(Bucket=self._bucket)

    async def put_crop(self, key: str, jpeg: bytes) -> None:
        """Idempotent: the key is derived from the event id, so a redelivery overwrites the same object."""
        await self._client.put_object(Bucket=self._bucket, Key=key, Body=jpeg, ContentType="image/jpeg")

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
