"""Ingest settings: where crops go and how device tokens are checked."""

from pydantic import Field

from services.common.settings import RestServiceSettings


class IngestSettings(RestServiceSettings):
    http_port: int = Field(8001, description="Port of /healthz, /readyz, /metrics and the REST API")
    s3_endpoint_url: str = Field(description="S3 API endpoint, e.g. http://minio:9000")
    s3_bucket: str = Field("revisit-crops", description="Bucket of face crops, created at start if missing")
    s3_region: str = Field("us-east-1", description="Region name the S3 client signs with")
    s3_access_key: str = Field(description="S3 access key (from a Secret)")
    s3_secret_key: str = Field(description="S3 secret key (from a Secret)")
    max_crop_bytes: int = Field(256 * 1024, description="Larger crops are rejected")
    max_clock_skew_seconds: int = Field(300, description="Sightings further in the future are rejected")
