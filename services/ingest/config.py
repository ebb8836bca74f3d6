"""Ingest settings: where crops go and how device tokens are checked."""

from pydantic import Field

from services.common.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    http_port: int = 8001
    s3_endpoint_url: str = Field(description="S3 API endpoint, e.g. http://minio:9000")
    s3_bucket: str = "revisit-crops"
    s3_region: str = "us-east-1"
    s3_access_key: str
    s3_secret_key: str
    jwt_public_key: str = Field(description="PEM of the RS256 key that signs device and user tokens")
    jwt_issuer: str = "revisit"
    jwt_audience: str = "revisit"
    max_crop_bytes: int = 256 * 1024
    max_clock_skew_seconds: int = 300
