"""Hostile-input lane (`python -m bench fuzz`): a few thousand schemathesis cases against every REST service.

The same code as tests/hostile/test_openapi_fuzz.py (devstack/fuzz.py), with more cases per operation: each
service is built in process through its own bootstrap on embedded NATS (JWT auth), Postgres, S3 and a Milvus
Lite file, then gets the coverage phase, EXAMPLES positive and EXAMPLES negative cases per operation with an
admin token, accepted cases replayed poisoned, and a few anonymous cases. Every figure must show 0 server
errors and 0 other findings; any finding is printed and the run exits 1.
"""

import asyncio
import sys
import tempfile
from pathlib import Path

from bench.report import table, write_section
from devstack.fuzz import REST_SERVICES, FuzzReport, FuzzTarget, distinct, fuzz_app, service_app
from devstack.infra import S3_ACCESS_KEY, S3_SECRET_KEY, free_port, start_nats, start_postgres, start_s3
from devstack.nats_auth import load_or_create_trust, write_user_credentials
from devstack.stack import load_or_create_keys
from services.common.auth import issue_token

EXAMPLES = 100
"""Cases per operation and generation mode (the test lane sends 25)."""
ANONYMOUS_EXAMPLES = 10
TENANT = "fuzz-bench"


async def fuzz_services(target: FuzzTarget) -> list[FuzzReport]:
    """Each service in turn, so one at a time holds the machine's two cores."""
    token = issue_token(
        target.keys.private_pem,
        subject="fuzzer",
        tenant_id=TENANT,
        roles=["admin"],
        issuer="revisit",
        audience="revisit",
    )
    reports = []
    for service in REST_SERVICES:
        async with service_app(service, target) as app:
            report = await fuzz_app(service, app, token=token, examples=EXAMPLES)
            anonymous = await fuzz_app(service, app, token=None, examples=ANONYMOUS_EXAMPLES)
        report.cases += anonymous.cases
        report.unsendable += anonymous.unsendable
        report.seconds += anonymous.seconds
        report.findings += anonymous.findings
        print(f"{service}: {report.cases} cases, {len(report.findings)} findings, {report.seconds:.0f} s", flush=True)
        reports.append(report)
    return reports


def run(folder: Path) -> list[FuzzReport]:
    trust = load_or_create_trust(folder / "keys" / "nats")
    users = write_user_credentials(trust, folder / "nats-users")
    url, nats_process = start_nats(folder / "nats", folder / "logs", free_port(), trust)
    postgres = start_postgres(folder / "postgres")
    s3, s3_process = start_s3(folder / "s3", folder / "logs", free_port())
    try:
        target = FuzzTarget(
            nats_url=url,
            nats_users=users,
            nats_trust=trust,
            postgres_dsn=postgres.dsn,
            s3_endpoint=s3,
            s3_credentials=(S3_ACCESS_KEY, S3_SECRET_KEY),
            milvus_uri=str(folder / "milvus.db"),
            keys=load_or_create_keys(folder / "keys"),
        )
        return asyncio.run(fuzz_services(target))
    finally:
        s3_process.stop()
        postgres.stop()
        nats_process.stop()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="revisit-bench-fuzz-") as folder:
        reports = run(Path(folder))
    rows: list[list[object]] = [
        [r.service, f"{r.cases:,}", len(r.server_errors), len(r.findings) - len(r.server_errors), f"{r.seconds:.0f}"]
        for r in reports
    ]
    total = sum(r.cases for r in reports)
    rows.append(
        [
            "**all**",
            f"{total:,}",
            sum(len(r.server_errors) for r in reports),
            sum(len(r.findings) - len(r.server_errors) for r in reports),
            f"{sum(r.seconds for r in reports):.0f}",
        ]
    )
    body = (
        f"schemathesis against each REST service in process ({EXAMPLES} positive and {EXAMPLES} negative cases per"
        " operation, its coverage phase, accepted cases replayed with a NUL, a calendar-edge date, NaN or a huge"
        f" integer in one field, and {ANONYMOUS_EXAMPLES} anonymous cases per operation and mode): no 5xx, responses"
        ' as documented, every 4xx with a `detail` (docs/operations.md, "Hostile input").\n\n'
        + table(["service", "cases", "5xx found", "other findings", "seconds"], rows)
    )
    write_section("fuzz", "Hostile input: OpenAPI fuzzing", body)
    findings = [f for r in reports for f in distinct(r.findings)]
    if findings:
        print("\n".join(str(f) for f in findings))
        sys.exit(1)


if __name__ == "__main__":
    main()
