"""Identity settings."""

from pydantic import Field

from services.common.settings import PostgresServiceSettings, RetentionSettings


class IdentitySettings(PostgresServiceSettings, RetentionSettings):
    http_port: int = Field(8003, description="Port of /healthz, /readyz, /metrics and the REST API")
    s3_endpoint_url: str = Field(description="S3 API endpoint of the crops bucket (ingest's), e.g. http://minio:9000")
    s3_public_endpoint_url: str | None = Field(
        None, description="The S3 address browsers reach, for crop links; default: s3_endpoint_url"
    )
    s3_bucket: str = Field("revisit-crops", description="Bucket of face crops (ingest writes it)")
    s3_region: str = Field("us-east-1", description="Region name the links are signed for")
    s3_access_key: str = Field(description="S3 access key that may read crops (from a Secret)")
    s3_secret_key: str = Field(description="S3 secret key (from a Secret)")
    crop_link_seconds: int = Field(300, ge=10, le=86400, description="How long a crop link loads")
    operation_resume_seconds: float = Field(
        15.0, gt=0, description="An operation still open this long has its events published again"
    )
