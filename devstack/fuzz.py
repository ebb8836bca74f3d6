"""Hostile input for the REST services: schemathesis cases sent to each service's FastAPI app in process.

Shared by the test lane (tests/hostile/test_openapi_fuzz.py, a few dozen cases per operation) and the bench
lane (bench/bench_fuzz.py, a few thousand in all). Each service is built through its own `bootstrap()` on real
NATS, Postgres, S3 and Milvus Lite, so a case reaches the adapters the way a request in production does.

Why not `case.call()`: schemathesis runs an ASGI app on an event loop of its own (a portal thread), but the
service's asyncpg pool and NATS connection belong to the loop that bootstrapped it. So hypothesis draws the
cases in a worker thread and each request is sent through `httpx.ASGITransport` on the service's own loop;
schemathesis then judges the response with its checks and ours.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, CheckFunction, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.openapi import from_asgi
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance

from devstack.nats_auth import SYSTEM_USER, NatsTrust
from devstack.stack import SigningKeys, audit_login_dsn, create_audit_login
from services.audit.bootstrap import bootstrap as audit_bootstrap
from services.audit.config import AuditSettings
from services.identity.bootstrap import bootstrap as identity_bootstrap
from services.identity.config import IdentitySettings
from services.ingest.bootstrap import bootstrap as ingest_bootstrap
from services.ingest.config import IngestSettings
from services.matcher.bootstrap import bootstrap as matcher_bootstrap
from services.matcher.config import MatcherSettings
from services.reporting.bootstrap import bootstrap as reporting_bootstrap
from services.reporting.config import ReportingSettings

AnyCase = Case[Any]
AnyOperation = APIOperation[Any, Any, Any, Any]

REST_SERVICES = ("ingest", "matcher", "identity", "reporting", "audit")
BASE_URL = "http://fuzz"


@dataclass(frozen=True)
class FuzzTarget:
    """Where the in-process services connect: the same servers the integration tests and `make dev` use."""

    nats_url: str
    nats_users: dict[str, Path]
    nats_trust: NatsTrust
    postgres_dsn: str
    s3_endpoint: str
    s3_credentials: tuple[str, str]
    milvus_uri: str
    keys: SigningKeys


@dataclass(frozen=True)
class Finding:
    """One response a check refused: enough to reproduce it by hand."""

    service: str
    operation: str
    check: str
    status_code: int | None
    request: str
    message: str

    def __str__(self) -> str:
        return f"{self.service} {self.operation} [{self.check}] {self.status_code}: {self.request}\n  {self.message}"


@dataclass
class FuzzReport:
    service: str
    cases: int = 0
    unsendable: int = 0
    """Cases httpx cannot put on the wire (e.g. a header with a NUL byte): no server ever sees them."""
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    poisoned: set[tuple[str, str, str, str]] = field(default_factory=set)
    """(operation, location, field, value) already replayed poisoned."""

    @property
    def server_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.status_code is not None and f.status_code >= 500]


def distinct(findings: list[Finding]) -> list[Finding]:
    """The first finding of each (operation, check, status): one line per thing to fix."""
    first: dict[tuple[str, str, str, int | None], Finding] = {}
    for finding in findings:
        first.setdefault((finding.service, finding.operation, finding.check, finding.status_code), finding)
    return list(first.values())


def refusal_has_reason(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """Every 4xx says why (STYLE: domain errors become 4xx with a reason): a JSON body with a non-empty
    `detail`, which FastAPI's own refusals and our HTTPExceptions both carry."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError as error:
        raise AssertionError(f"{response.status_code} without a JSON body: {response.text[:200]!r}") from error
    if not isinstance(body, dict) or not body.get("detail"):
        raise AssertionError(f"{response.status_code} without a reason (`detail`): {response.text[:200]!r}")
    return None


CHECKS: list[CheckFunction] = [
    not_a_server_error,
    response_schema_conformance,
    negative_data_rejection,
    refusal_has_reason,
]
POISON_CHECKS: list[CheckFunction] = [not_a_server_error, refusal_has_reason]
"""A poisoned case may be valid by the schema (a NUL is a character) and still refused: only 5xx and
reason-less refusals count."""

POISONED_STRINGS = (
    "\x00",  # Postgres text refuses NUL: asyncpg raises unless the edge refuses first
    "9999-12-31",  # the last date: one day more overflows
    "0001-01-01T00:00:00+14:00",  # before datetime.min in UTC
    "9999-12-31T23:59:59-14:00",  # after datetime.max in UTC
    "x" * 10_000,
)
POISONED_NUMBERS = (float("nan"), float("inf"), 10**30, -(10**30))


def _poisoned(case: AnyCase, seen: set[tuple[str, str, str, str]]) -> list[AnyCase]:
    """An accepted case with one field at a time replaced by a value random drawing rarely makes while the
    rest of the request is valid: a NUL appended, a date at the calendar's edge, NaN, a huge integer. Each
    (operation, field, value) is tried once per run, so the pass stays bounded."""
    variants = []
    for location in ("path_parameters", "query", "body"):
        fields = getattr(case, location)
        if not isinstance(fields, dict):
            continue
        for name, value in fields.items():
            replacements: tuple[object, ...] = ()
            if isinstance(value, str):
                replacements = (value + "\x00", *POISONED_STRINGS)
            elif isinstance(value, int | float) and not isinstance(value, bool) and location == "body":
                replacements = POISONED_NUMBERS
            for replacement in replacements:
                key = (case.operation.label, location, name, repr(replacement)[:20])
                if key in seen:
                    continue
                seen.add(key)
                variants.append(_with_field(case, location, name, replacement))
    return variants


def _with_field(case: AnyCase, location: str, name: str, value: object) -> AnyCase:
    parts: dict[str, Any] = {
        "path_parameters": dict(case.path_parameters or {}),
        "query": dict(case.query or {}),
        "headers": dict(case.headers or {}),
        "body": dict(case.body) if isinstance(case.body, dict) else case.body,
        "media_type": case.media_type,
    }
    parts[location][name] = value
    variant: AnyCase = case.operation.Case(**parts)
    return variant


def load_schema(app: FastAPI, *, authenticated: bool) -> BaseSchema:
    """The app's own OpenAPI document. With a token the generated cases carry ours (schemathesis would otherwise
    make up Authorization headers); without one, it makes them up, and every case must be refused with 401."""
    schema = from_asgi("/openapi.json", app)
    schema.config.generation.update(with_security_parameters=not authenticated)
    return schema


async def fuzz_app(
    service: str,
    app: FastAPI,
    *,
    token: str | None,
    examples: int,
    operations: Callable[[AnyOperation], bool] = lambda _: True,
) -> FuzzReport:
    """`examples` positive and `examples` negative cases per operation of `app` (derandomized: the same cases
    every run), each checked by CHECKS. Returns every finding instead of stopping at the first, so one run shows
    everything to fix."""
    report = FuzzReport(service)
    schema = load_schema(app, authenticated=token is not None)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        for result in schema.get_all_operations():
            if not isinstance(result, Ok):
                report.findings.append(Finding(service, "?", "invalid OpenAPI operation", None, "", str(result.err())))
                continue
            operation = result.ok()
            if not operations(operation):
                continue
            await asyncio.to_thread(_run_coverage, schema, operation, client, loop, headers, report)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                await asyncio.to_thread(_run_operation, operation, mode, examples, client, loop, headers, report)
    report.seconds = time.perf_counter() - started
    return report


def _run_coverage(
    schema: BaseSchema,
    operation: AnyOperation,
    client: httpx.AsyncClient,
    loop: asyncio.AbstractEventLoop,
    headers: dict[str, str],
    report: FuzzReport,
) -> None:
    """schemathesis' coverage phase: the boundaries of every declared constraint (lengths, ranges, a value of
    the wrong type, a missing required field), beside the schema's examples. Deterministic by construction,
    and it reaches what random drawing rarely does: a bad value in one field while the others are valid."""
    config = schema.config.generation_for(operation=operation, phase="coverage")
    for case in schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode), generation_config=config):
        _send(case, client, loop, headers, report)


def _send(
    case: AnyCase,
    client: httpx.AsyncClient,
    loop: asyncio.AbstractEventLoop,
    headers: dict[str, str],
    report: FuzzReport,
    checks: list[CheckFunction] = CHECKS,
    poison: bool = True,
) -> None:
    """Send one case on the service's loop and judge the answer; an accepted one is replayed poisoned."""
    try:
        request = client.build_request(**_httpx_arguments(case, headers))
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, TypeError, UnicodeError):
        report.unsendable += 1
        return
    response = asyncio.run_coroutine_threadsafe(client.send(request), loop).result(timeout=60)
    report.cases += 1
    _judge(report, case, response, checks)
    if poison and response.status_code < 400:
        for variant in _poisoned(case, report.poisoned):
            _send(variant, client, loop, headers, report, checks=POISON_CHECKS, poison=False)


def _run_operation(
    operation: AnyOperation,
    mode: GenerationMode,
    examples: int,
    client: httpx.AsyncClient,
    loop: asyncio.AbstractEventLoop,
    headers: dict[str, str],
    report: FuzzReport,
) -> None:
    """Hypothesis, in this worker thread, draws the cases; each request runs on the service's loop."""

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: AnyCase) -> None:
        _send(case, client, loop, headers, report)

    try:
        run()
    except Unsatisfiable:  # nothing to negate: an operation without parameters has no invalid request
        pass


def _httpx_arguments(case: AnyCase, headers: dict[str, str]) -> dict[str, Any]:
    """schemathesis serializes a case for `requests`; the same request, spelled for httpx."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    arguments: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params") or None,
        "headers": dict(kwargs.get("headers") or {}),
    }
    if cookies := kwargs.get("cookies"):
        arguments["headers"]["cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    if "json" in kwargs:
        arguments["json"] = kwargs["json"]
    elif isinstance(kwargs.get("data"), bytes | str):
        arguments["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        arguments["data"] = kwargs["data"]
    if kwargs.get("files"):
        arguments["files"] = kwargs["files"]
    return arguments


def _judge(report: FuzzReport, case: AnyCase, response: httpx.Response, checks: list[CheckFunction]) -> None:
    try:
        case.validate_response(response, checks=checks)
    except FailureGroup as group:
        report.findings += [_finding(report.service, case, response, failure) for failure in group.exceptions]
    except Failure as failure:
        report.findings.append(_finding(report.service, case, response, failure))


def _finding(service: str, case: AnyCase, response: httpx.Response, failure: Failure) -> Finding:
    request = response.request
    body = request.content[:300].decode("utf-8", "replace") if request.content else ""
    return Finding(
        service=service,
        operation=case.operation.label,
        check=failure.title,
        status_code=response.status_code,
        request=f"{request.method} {request.url} {body}".strip(),
        message=f"{failure.message[:300]} | response: {response.text[:300]}",
    )


@asynccontextmanager
async def service_app(name: str, target: FuzzTarget) -> AsyncIterator[FastAPI]:
    """The named service built through its own bootstrap (its subscribers started, as in the integration
    tests), yielding its FastAPI app."""
    builders = {
        "ingest": _ingest,
        "matcher": _matcher,
        "identity": _identity,
        "reporting": _reporting,
        "audit": _audit,
    }
    async with builders[name](target) as app:
        yield app


@asynccontextmanager
async def _ingest(target: FuzzTarget) -> AsyncIterator[FastAPI]:
    settings = IngestSettings(
        nats_url=target.nats_url,
        nats_credentials=target.nats_users["ingest"],
        s3_endpoint_url=target.s3_endpoint,
        s3_access_key=target.s3_credentials[0],
        s3_secret_key=target.s3_credentials[1],
        jwt_public_key=target.keys.public_pem,
        environment="test",
    )
    async with ingest_bootstrap(settings) as service:
        await service.broker.start()
        yield service.app


@asynccontextmanager
async def _matcher(target: FuzzTarget) -> AsyncIterator[FastAPI]:
    settings = MatcherSettings(
        nats_url=target.nats_url,
        nats_credentials=target.nats_users["matcher"],
        milvus_uri=target.milvus_uri,
        jwt_public_key=target.keys.public_pem,
        environment="test",
    )
    async with matcher_bootstrap(settings) as service:
        await service.broker.start()
        yield service.app


@asynccontextmanager
async def _identity(target: FuzzTarget) -> AsyncIterator[FastAPI]:
    settings = IdentitySettings(
        nats_url=target.nats_url,
        nats_credentials=target.nats_users["identity"],
        postgres_dsn=target.postgres_dsn,
        jwt_public_key=target.keys.public_pem,
        environment="test",
        s3_endpoint_url=target.s3_endpoint,
        s3_access_key=target.s3_credentials[0],
        s3_secret_key=target.s3_credentials[1],
        nats_public_url=target.nats_url,
        nats_account=target.nats_trust.account,
        nats_account_signing_seed=target.nats_trust.account_signing_seed,
        nats_operator_signing_seed=target.nats_trust.operator_signing_seed,
        nats_system_credentials=target.nats_users[SYSTEM_USER],
    )
    async with identity_bootstrap(settings) as service:
        await service.broker.start()
        yield service.app


@asynccontextmanager
async def _reporting(target: FuzzTarget) -> AsyncIterator[FastAPI]:
    settings = ReportingSettings(
        nats_url=target.nats_url,
        nats_credentials=target.nats_users["reporting"],
        postgres_dsn=target.postgres_dsn,
        jwt_public_key=target.keys.public_pem,
        environment="test",
    )
    async with reporting_bootstrap(settings) as service:
        await service.broker.start()
        yield service.app


@asynccontextmanager
async def _audit(target: FuzzTarget) -> AsyncIterator[FastAPI]:
    await create_audit_login(target.postgres_dsn)
    settings = AuditSettings(
        nats_url=target.nats_url,
        nats_credentials=target.nats_users["audit"],
        postgres_dsn=audit_login_dsn(target.postgres_dsn),
        postgres_migration_dsn=target.postgres_dsn,
        jwt_public_key=target.keys.public_pem,
        audit_signing_key=target.keys.audit_private_pem,
        environment="test",
    )
    async with audit_bootstrap(settings) as service:
        await service.broker.start()
        yield service.app
