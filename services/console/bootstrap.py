"""Builds the console: its HTTP client to the services, the token verifier, the face embedder, the pages."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.common.auth import TokenVerifier
from services.common.http import ReadinessCheck, create_app
from services.common.startup import wait_for_dependency
from services.console.adapters.apis import ApiLocations, ApiRefused
from services.console.adapters.faces import FaceEmbedder, load_face_embedder
from services.console.config import ConsoleSettings
from services.console.pages import audit, operations, persons, registry, reports, review, signin, staff
from services.console.rendering import render_refusal
from services.console.session import SignInRequired

SERVICE = "console"
STATIC = Path(__file__).parent / "static"


@dataclass
class Console:
    settings: ConsoleSettings
    app: FastAPI
    broker: None = None


def api_locations(settings: ConsoleSettings) -> ApiLocations:
    return ApiLocations(settings.identity_url, settings.matcher_url, settings.reporting_url, settings.audit_url)


def service_alive(client: httpx.AsyncClient, name: str, base_url: str) -> ReadinessCheck:
    async def check() -> None:
        response = await client.get(f"{base_url.rstrip('/')}/healthz", timeout=2)
        response.raise_for_status()

    check.__name__ = f"{name}_alive"
    return check


def build_app(settings: ConsoleSettings, client: httpx.AsyncClient, embedder: FaceEmbedder) -> FastAPI:
    locations = api_locations(settings)
    readiness = {
        name: service_alive(client, name, url)
        for name, url in (
            ("identity", locations.identity),
            ("matcher", locations.matcher),
            ("reporting", locations.reporting),
            ("audit", locations.audit),
        )
    }
    pages = (signin, persons, operations, review, reports, staff, registry, audit)
    app = create_app(SERVICE, readiness, None, [module.router for module in pages])
    app.state.token_verifier = TokenVerifier(settings.jwt_public_key, settings.jwt_issuer, settings.jwt_audience)
    app.state.api_locations, app.state.http_client = locations, client
    app.state.settings, app.state.face_embedder = settings, embedder
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequired)
        return RedirectResponse(f"/signin?reason={quote(error.reason)}", status_code=303)

    @app.exception_handler(ApiRefused)
    async def show_refusal(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiRefused)
        return render_refusal(request, error)

    return app


@asynccontextmanager
async def bootstrap(settings: ConsoleSettings) -> AsyncIterator[Console]:
    """The console, once identity answers (the others are checked by /readyz) and the face models load."""
    embedder = load_face_embedder(settings.console_model_dir)
    async with httpx.AsyncClient(timeout=settings.console_api_timeout_seconds) as client:
        alive = service_alive(client, "identity", settings.identity_url)
        await wait_for_dependency(
            "identity API",
            alive,
            settings.startup_timeout_seconds,
            f"Is REVISIT_IDENTITY_URL={settings.identity_url} right and identity running?",
        )
        yield Console(settings, build_app(settings, client, embedder))
