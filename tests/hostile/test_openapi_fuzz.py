"""Hostile input on every REST service: schemathesis against each service's own OpenAPI, in process.

Each of ingest, matcher, identity, reporting and audit is built through its own `bootstrap()` on the session's
real NATS, Postgres, S3 and Milvus Lite, and gets FUZZ_EXAMPLES positive and as many negative cases per
operation (derandomized, so every run sends the same ones) with an admin token of a fresh tenant, then a few
without a token. Checks (devstack/fuzz.py): no 5xx; a response the app declares a schema for conforms to it;
schema-invalid input is refused; every 4xx says why (a non-empty `detail`).

This is the fast lane of `make test`. The bench lane sends a few thousand cases (`python -m bench fuzz`,
figures in docs/BENCHMARKS.md); both are described in docs/operations.md, "Hostile input".
"""

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.fuzz import REST_SERVICES, FuzzTarget, distinct, fuzz_app, service_app
from devstack.nats_auth import NatsTrust
from devstack.stack import SigningKeys
from tests.support import new_tenant

FUZZ_EXAMPLES = int(os.environ.get("REVISIT_FUZZ_EXAMPLES", "25"))
"""Cases per operation and generation mode; the bench lane raises it."""
ANONYMOUS_EXAMPLES = 5


@pytest.fixture(scope="module")
def target(
    nats_url: str,
    nats_users: dict[str, Path],
    nats_trust: NatsTrust,
    postgres_dsn: str,
    s3_endpoint: str,
    s3_credentials: tuple[str, str],
    keys: SigningKeys,
    tmp_path_factory: pytest.TempPathFactory,
) -> FuzzTarget:
    return FuzzTarget(
        nats_url=nats_url,
        nats_users=nats_users,
        nats_trust=nats_trust,
        postgres_dsn=postgres_dsn,
        s3_endpoint=s3_endpoint,
        s3_credentials=s3_credentials,
        milvus_uri=str(tmp_path_factory.mktemp("fuzz-milvus") / "faces.db"),
        keys=keys,
    )


@pytest.mark.parametrize("service", REST_SERVICES)
async def test_hostile_requests_get_no_5xx_and_every_refusal_a_reason(
    service: str, target: FuzzTarget, make_token: Callable[..., str]
) -> None:
    token = make_token(new_tenant(), ["admin"], subject="fuzzer")
    async with service_app(service, target) as app:
        authenticated = await fuzz_app(service, app, token=token, examples=FUZZ_EXAMPLES)
        anonymous = await fuzz_app(service, app, token=None, examples=ANONYMOUS_EXAMPLES)
    findings = authenticated.findings + anonymous.findings
    assert authenticated.cases > 0
    assert not findings, f"{len(findings)} findings, distinct:\n" + "\n".join(str(f) for f in distinct(findings))
