"""Ingest settings: where crops go, how device tokens are checked, and the limits an event must keep."""

from pydantic import Field

from services.common.settings import RestServiceSettings, RetentionSettings
from services.ingest.domain.validation import largest_event_bytes

WEEK_SECONDS = 7 * 86400


class IngestSettings(RestServiceSettings, RetentionSettings):
    http_port: int = Field(8001, description="Port of /healthz, /readyz, /metrics and the REST API")
    s3_endpoint_url: str = Field(description="S3 API endpoint, e.g. http://minio:9000")
    s3_bucket: str = Field("revisit-crops", description="Bucket of face crops, created at start if missing")
    s3_region: str = Field("us-east-1", description="Region name the S3 client signs with")
    s3_access_key: str = Field(description="S3 access key (from a Secret)")
    s3_secret_key: str = Field(description="S3 secret key (from a Secret)")
    consumer_workers: int = Field(
        64,
        ge=1,
        le=1024,
        description="Detected faces handled at once, as one fetched batch: their crops are stored and their events "
        "published together, since each waits on S3 and NATS round trips, not on the CPU (each message is still "
        "acknowledged after the batch's crops and events are stored)",
    )
    max_crop_bytes: int = Field(256 * 1024, ge=1024, description="Larger crops are rejected")
    max_clock_skew_seconds: int = Field(300, ge=0, description="Sightings further in the future are rejected")
    outbox_max_age_seconds: int = Field(
        WEEK_SECONDS,
        gt=0,
        description="Sightings captured longer ago are rejected: the edges' outbox drops older events "
        "(REVISIT_EDGE_OUTBOX_MAX_AGE_SECONDS) and the FACES_DETECTED stream keeps 7 days",
    )
    max_body_bytes: int | None = Field(
        None,
        ge=1024,
        description="POST /v1/faces bodies longer than this are refused (413) unread; default: the largest legal "
        "event, 4/3 of max_crop_bytes (base64) + 2048 embedding values x 32 chars + 16 KiB = 431448 bytes",
    )

    @property
    def body_limit(self) -> int:
        """The HTTP body limit in bytes: the setting, or the largest event the other limits allow."""
        return self.max_body_bytes if self.max_body_bytes is not None else largest_event_bytes(self.max_crop_bytes)
