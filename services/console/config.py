"""Console settings: where the services' REST APIs are, how to check a user's token, where the face models are."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import Environment


class ConsoleSettings(BaseSettings):
    """Read from `REVISIT_*` variables. The console holds no data: it calls the services with the user's token."""

    model_config = SettingsConfigDict(env_prefix="REVISIT_", extra="ignore")

    environment: Environment = Field(Environment.PRODUCTION, description="dev, test or production")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    http_host: str = Field("0.0.0.0", description="Address the console's pages are served on")
    http_port: int = Field(8080, description="Port of the same")
    jwt_public_key: str = Field(description="PEM of the RS256 key that signs user tokens (the IdP's in production)")
    jwt_issuer: str = Field("revisit", description="Expected `iss` of tokens")
    jwt_audience: str = Field("revisit", description="Expected `aud` of tokens")
    identity_url: str = Field(description="Identity's REST API, e.g. http://identity:8003")
    matcher_url: str = Field(description="Matcher's REST API, e.g. http://matcher:8002")
    reporting_url: str = Field(description="Reporting's REST API, e.g. http://reporting:8004")
    audit_url: str = Field(description="Audit's REST API, e.g. http://audit:8005")
    console_model_dir: Path = Field(
        description="Model pack folder (detector and embedder) the staff page embeds uploaded photos with,"
        " the edge's own models, so staff vectors match what the edges compute"
    )
    console_api_timeout_seconds: float = Field(10.0, gt=0, description="How long a page waits for a service")
    console_secure_cookie: bool = Field(
        True, description="Send the session cookie over HTTPS only (false in dev, served on http://127.0.0.1)"
    )
    console_signin_url: str | None = Field(
        None,
        description="Where the sign-in page sends users in production: the OIDC provider's authorization URL"
        " (implicit flow, response_type=token, redirect_uri = the console's root); unset: paste a token",
    )
    startup_timeout_seconds: float = Field(
        30.0, gt=0, description="How long to wait for the services at start before exiting with a message"
    )
