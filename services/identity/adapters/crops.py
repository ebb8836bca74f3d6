"""Links to face crops: S3 presigned GET URLs (SigV4), signed locally with read credentials.

Ingest owns the crops bucket; identity only signs links to objects in it, so a browser loads a crop for a
short time without a token. An erased person's crops are deleted by ingest, after which their links
answer 404. The links point at `s3_public_endpoint_url`, the address browsers reach (in a cluster, the
S3 service's internal address is usually not that one).
"""

from types import TracebackType
from typing import Any, Self

import aioboto3
from botocore.config import Config


class CropLinks:
    def __init__(
        self, endpoint_url: str, bucket: str, region: str, access_key: str, secret_key: str, seconds: int
    ) -> None:
        self._bucket, self._seconds, self._endpoint_url = bucket, seconds, endpoint_url
        self._session = aioboto3.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._client: Any = None
        self._client_context: Any = None

    async def __aenter__(self) -> Self:
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
        self._client_context = self._session.client("s3", endpoint_url=self._endpoint_url, config=config)
        self._client = await self._client_context.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client_context.__aexit__(exc_type, exc, tb)

    async def link(self, crop_key: str | None) -> str | None:
        """A URL that loads the crop for `seconds`; None for a sighting without a crop (privacy mode)."""
        if crop_key is None:
            return None
        url: str = await self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": crop_key}, ExpiresIn=self._seconds
        )
        return url
