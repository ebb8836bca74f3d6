"""Identity settings."""

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

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
    nats_public_url: str | None = Field(
        None, description="The NATS URL edge devices connect to, given with their credentials (POST /v1/devices)"
    )
    nats_account: str | None = Field(None, description="Public key of the application account devices belong to")
    nats_account_signing_seed: SecretStr | None = Field(
        None, description="Seed of the account's signing key, which signs device users (from a Secret)"
    )
    nats_operator_signing_seed: SecretStr | None = Field(
        None, description="Seed of the operator's signing key, which re-signs the account to revoke a device"
    )
    nats_system_credentials: Path | None = Field(
        None, description=".creds of a system-account user, to push the revoked account to the servers"
    )
    operation_resume_seconds: float = Field(
        15.0, gt=0, description="An operation still open this long has its events published again"
    )

    @model_validator(mode="after")
    def device_keys_all_or_none(self) -> Self:
        """The device registry needs every NATS key or none (then its routes answer 503 naming them)."""
        values = (
            self.nats_public_url,
            self.nats_account,
            self.nats_account_signing_seed,
            self.nats_operator_signing_seed,
            self.nats_system_credentials,
        )
        if any(v is None for v in values) and not all(v is None for v in values):
            raise ValueError(
                "the device registry needs all of REVISIT_NATS_PUBLIC_URL, REVISIT_NATS_ACCOUNT,"
                " REVISIT_NATS_ACCOUNT_SIGNING_SEED, REVISIT_NATS_OPERATOR_SIGNING_SEED and"
                " REVISIT_NATS_SYSTEM_CREDENTIALS, or none of them"
            )
        return self
