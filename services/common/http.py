"""Every service's HTTP face: `/healthz`, `/readyz`, `/metrics`, and the loop that serves it beside the broker."""

import argparse
import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import fastapi_offline  # only for the Swagger UI and ReDoc files its package holds
import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from faststream.nats import NatsBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator

from services.common.auth import TokenVerifier
from services.common.bus import consumed_subjects, start_consuming
from services.common.devsettings import command_settings
from services.common.logging import configure_logging, get_logger
from services.common.metrics import count_consumed_from_zero
from services.common.settings import RestServiceSettings, ServiceSettings
from services.common.startup import run_service

DOCS_ASSETS = "/docs-assets"
"""Where each service serves Swagger UI's and ReDoc's files itself (from the `fastapi-offline` wheel)."""

ReadinessCheck = Callable[[], Awaitable[object]]
"""Raises (or times out) when a dependency is not usable."""

log = get_logger(__name__)


def create_app(
    service: str,
    readiness: Mapping[str, ReadinessCheck],
    settings: RestServiceSettings | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The ops routes every service has, plus `routers` behind the JWT verifier built from `settings`."""
    app = FastAPI(title=f"Revisit {service}", version="1.0.0", docs_url=None, redoc_url=None)
    serve_docs_offline(app)
    if settings is not None:
        app.state.token_verifier = TokenVerifier(settings.jwt_public_key, settings.jwt_issuer, settings.jwt_audience)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["ops"])
    async def readyz(response: Response) -> dict[str, object]:
        """Ready: every dependency answered within 2 s."""
        failures = {}
        for name, check in readiness.items():
            try:
                await asyncio.wait_for(check(), timeout=2)
            except Exception as error:  # any failure means not ready; the reason is returned
                failures[name] = f"{type(error).__name__}: {error}"
        if failures:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
            return {"status": "unavailable", "failures": failures}
        return {"status": "ready"}

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    document_refusals(app)
    app.add_exception_handler(RequestValidationError, refuse_invalid_request)
    return app


def serve_docs_offline(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` with every file served by the service: FastAPI's own pages load them
    from a CDN, so they were blank on a site without internet."""
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # Swagger UI's default sends the document to swagger.io
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


async def refuse_invalid_request(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422, except that the refused input is echoed JSON-safe: a NaN or infinity in the body (which
    Python's JSON reader accepts) made FastAPI's own handler fail to write the refusal, a 500."""
    assert isinstance(error, RequestValidationError)
    detail = json_safe(jsonable_encoder(error.errors()))
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def json_safe(value: object) -> object:
    """`value` with every non-finite float spelled as a string ("nan", "inf"), which JSON can carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def document_refusals(app: FastAPI) -> None:
    """FastAPI documents every 422 as its own request validation errors (a list in `detail`), but a route
    refuses a domain error with a sentence (`HTTPException(422, "a report covers at most 400 days")`): the
    OpenAPI document says `detail` is either, so clients and the fuzz lane's schema check read the truth."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
            if error is not None:
                listed = error["properties"]["detail"]
                error["properties"]["detail"] = {
                    "anyOf": [listed, {"type": "string", "minLength": 1}],
                    "title": "Detail",
                    "description": "The request's validation errors, or the reason it was refused",
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def refuse_nul(text: str) -> str:
    """Postgres `text` cannot hold a NUL character (asyncpg raises on it, a 500): a request carrying one is
    refused at the edge instead, with the reason."""
    if "\x00" in text:
        raise ValueError("contains NUL (\\x00), which no text field may hold")
    return text


NulFreeText = Annotated[str, AfterValidator(refuse_nul)]
"""A free-text request field (a name, a note) that ends up in Postgres."""


async def read_body_within(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 before it is read when Content-Length says it is longer than
    `max_bytes`, and cut off at `max_bytes` when it streams without one (or lies): a hostile body costs at most
    `max_bytes` of memory. Call it only after authenticating, so an anonymous body is never read at all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"body of {declared} bytes is over the limit of {max_bytes} bytes"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"body is over the limit of {max_bytes} bytes; it was not read further",
            )
    return bytes(body)


def nats_ready(broker: NatsBroker) -> ReadinessCheck:
    async def check() -> None:
        if not broker.connection.is_connected:
            raise ConnectionError("NATS disconnected")
        await broker.connection.flush(timeout=1)

    return check


async def serve(app: FastAPI, host: str, port: int, broker: NatsBroker | None) -> None:
    """Start the subscribers, serve HTTP until SIGINT/SIGTERM, then drain and stop the broker."""
    if broker is not None:
        await start_consuming(broker)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    log.info("serving", host=host, port=port)
    try:
        await server.serve()
    finally:
        if broker is not None:
            await broker.stop()


class RunningService(Protocol):
    app: FastAPI
    broker: NatsBroker


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


async def serve_service(
    service: str,
    settings_type: type[SettingsT],
    bootstrap: Callable[[SettingsT], AbstractAsyncContextManager[RunningService]],
) -> None:
    """What every `python -m services.<name>` does: settings from the environment, logs, bootstrap, serve."""
    settings = settings_type()
    configure_logging(service, settings.log_level)
    async with bootstrap(settings) as running:
        count_consumed_from_zero(service, consumed_subjects(running.broker))
        await serve(running.app, settings.http_host, settings.http_port, running.broker)


async def run_retention_once(
    service: str, settings_type: type[SettingsT], retention: Callable[[SettingsT, datetime], Awaitable[object]]
) -> None:
    """`python -m services.<name> retention`: settings from the environment (or the running `make dev`'s, in
    `.dev/`), logs, one run as of now."""
    settings = command_settings(settings_type, service)
    configure_logging(service, settings.log_level)
    await retention(settings, datetime.now(UTC))


def serve_or_retention(
    service: str,
    settings_type: type[SettingsT],
    bootstrap: Callable[[SettingsT], AbstractAsyncContextManager[RunningService]],
    retention: Callable[[SettingsT, datetime], Awaitable[object]],
    retention_help: str,
) -> None:
    """The command line of a service that owns a retention job: `serve` (the default) or `retention` (the
    chart's CronJob, `make dev`'s scheduler: one run, then exit)."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="consume and serve the API (default)")
    commands.add_parser("retention", help=retention_help)
    if parser.parse_args().command == "retention":
        run_service(lambda: run_retention_once(service, settings_type, retention))
    else:
        run_service(lambda: serve_service(service, settings_type, bootstrap))
