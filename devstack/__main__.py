"""`python -m devstack up`: what `make dev` runs. Starts the embedded infrastructure (or reuses what
REVISIT_NATS_URL / REVISIT_POSTGRES_DSN / REVISIT_S3_ENDPOINT_URL / REVISIT_MILVUS_URI name), every service,
then the demo edge over `../shared/faces` (or SOURCE), and prints the reporting URL, a dev token and a
curl line, and runs the services' retention jobs at start and every 24 hours (the chart's CronJobs' stand-in).
Ctrl-C stops everything; data stays under `.dev/` for the next start."""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from devstack.demo import DemoDay, build_demo_days
from devstack.infra import EmbeddedPostgres, InfraError, ManagedProcess, start_nats, start_postgres, start_s3
from devstack.ingest_summary import faces_stream_position, print_ingest_summary
from devstack.nats_auth import (
    ADMIN_USER,
    SYSTEM_USER,
    NatsTrust,
    device_authority_environment,
    load_or_create_trust,
    write_credentials,
    write_user_credentials,
)
from devstack.stack import (
    CONSOLE,
    CONSOLE_PORT,
    DEFAULT_PORTS,
    Endpoints,
    load_or_create_keys,
    retention_services,
    service_environment,
    shared_dir,
    start_console,
    start_retention_scheduler,
    start_services,
    wait_until_ready,
)
from edge.models import EMBEDDERS, resolve_model
from services.common.auth import issue_token
from services.common.devsettings import write_dev_settings

TENANT, SITE, CAMERA = "demo", "store-1", "entrance"
DEV_NATS_PORT, DEV_S3_PORT = 14222, 19000


def start_infrastructure(
    data: Path, stoppers: list[ManagedProcess], others: list[EmbeddedPostgres], trust: NatsTrust
) -> Endpoints:
    """Reuse the endpoints given in the environment; start the embedded default for the others, each added to
    `stoppers` or `others` as soon as it runs, so a later failure stops it.

    The embedded NATS runs with `trust` and each service gets its own user; a NATS given in REVISIT_NATS_URL
    comes with its one user in REVISIT_NATS_CREDENTIALS (if it needs one), which every process inherits."""
    logs = data / "logs"
    nats_url, nats_users = os.environ.get("REVISIT_NATS_URL"), dict[str, Path]()
    if not nats_url:
        nats_url, nats = start_nats(data / "nats", logs, DEV_NATS_PORT, trust)
        stoppers.append(nats)
        nats_users = write_user_credentials(trust, data / "keys" / "nats" / "users")
    postgres_dsn = os.environ.get("REVISIT_POSTGRES_DSN")
    if not postgres_dsn:
        postgres = start_postgres(data / "postgres")
        postgres_dsn = postgres.dsn
        others.append(postgres)
    s3_endpoint = os.environ.get("REVISIT_S3_ENDPOINT_URL")
    if not s3_endpoint:
        s3_endpoint, s3 = start_s3(data / "s3", logs, DEV_S3_PORT)
        stoppers.append(s3)
    milvus_uri = os.environ.get("REVISIT_MILVUS_URI")
    if not milvus_uri:  # Milvus Lite on a local file
        (data / "milvus").mkdir(parents=True, exist_ok=True)
        milvus_uri = str(data / "milvus" / "faces.db")
    authority = device_authority_environment(trust, nats_url, nats_users[SYSTEM_USER]) if nats_users else {}
    return Endpoints(nats_url, postgres_dsn, s3_endpoint, milvus_uri, nats_users, authority)


def demo_device_credentials(token: str, endpoints: Endpoints, data: Path) -> Path | None:
    """The demo edge's device, created through identity's `POST /v1/devices` as an admin would (its camera only,
    its tenant's staff gallery); an earlier run's device is revoked first. None with a NATS given from outside
    (the edge then uses REVISIT_NATS_CREDENTIALS)."""
    if not endpoints.device_authority:
        return None
    devices = f"http://127.0.0.1:{DEFAULT_PORTS['identity']}/v1/devices"
    headers = {"authorization": f"Bearer {token}"}
    device_id = f"edge-{SITE}-{datetime.now(UTC):%Y%m%d%H%M%S}"
    for earlier in httpx.get(devices, headers=headers, timeout=10).json()["items"]:
        if earlier["revoked_at"] is None:
            httpx.delete(f"{devices}/{earlier['device_id']}", headers=headers, timeout=10)
    body = {"device_id": device_id, "site_id": SITE, "camera_ids": [CAMERA]}
    response = httpx.post(devices, json=body, headers=headers, timeout=10)
    if response.status_code != 201:
        raise InfraError(f"creating the demo device failed: {response.status_code} {response.text}")
    path = write_credentials(
        data / "keys" / "nats" / "devices" / "demo-edge.creds", response.json()["nats_credentials"]
    )
    print(f"device {device_id}: NATS credentials in {path}", flush=True)
    return path


def run_edge(
    source: Path | str, clock_start: datetime, endpoints: Endpoints, data: Path, credentials: Path | None
) -> None:
    command = [
        sys.executable, "-m", "edge", "run", "--source", str(source), "--tenant", TENANT, "--site", SITE,
        "--camera", CAMERA, "--model-dir", str(shared_dir() / "models"), "--nats-url", endpoints.nats_url,
        "--clock-start", clock_start.isoformat(), "--outbox", str(data / "edge" / "outbox.db"), "--metrics-port", "0",
    ]  # fmt: skip
    if credentials is not None:
        command += ["--nats-credentials", str(credentials)]
    print(f"demo edge: {source} as of {clock_start:%Y-%m-%d %H:%M} UTC", flush=True)
    subprocess.run(command, check=True)


def wait_for_visits(url: str, token: str, params: dict[str, str], timeout: float = 120) -> dict[str, object]:
    deadline, totals = time.monotonic() + timeout, dict[str, object]()
    headers = {"authorization": f"Bearer {token}"}
    while time.monotonic() < deadline:
        response = httpx.get(url, params=params, headers=headers, timeout=5)
        totals = response.json().get("totals", {}) if response.status_code == 200 else {}
        if totals.get("visits"):
            time.sleep(3)  # let the last matches land
            return dict(httpx.get(url, params=params, headers=headers, timeout=5).json()["totals"])
        time.sleep(1)
    return totals


def register_demo(token: str) -> None:
    """The demo's site, camera and embedding model, through identity's registry API as an admin would."""
    identity = f"http://127.0.0.1:{DEFAULT_PORTS['identity']}/v1"
    headers = {"authorization": f"Bearer {token}"}
    model = resolve_model(shared_dir() / "models", EMBEDDERS["mobilefacenet_arcface_128"]).model_id
    for path, body in (
        (f"/sites/{SITE}", {"name": "Demo store", "time_zone": "UTC"}),
        (f"/cameras/{CAMERA}", {"site_id": SITE, "name": "Entrance"}),
        ("/embedding-models", {"embedding_models": [model]}),
    ):
        response = httpx.put(f"{identity}{path}", json=body, headers=headers, timeout=10)
        if response.status_code >= 300:
            raise InfraError(f"registering the demo ({path}) failed: {response.status_code} {response.text}")
    print(f"registered tenant {TENANT}: site {SITE}, camera {CAMERA}, model {model}", flush=True)


def print_newcomer_lines(token: str, endpoints: Endpoints, data: Path) -> None:
    """What a newcomer needs beside the console: where everything is and how to get a token of any role."""
    python = os.path.relpath(sys.executable)
    print(f"console (sign-in link, admin+analyst): http://127.0.0.1:{CONSOLE_PORT}/#token={token}")
    print(f"NATS: {endpoints.nats_url} (each service's user in {data / 'keys' / 'nats' / 'users'})")
    print(f"Postgres: {endpoints.postgres_dsn}")
    print(f"S3: {endpoints.s3_endpoint}   Milvus: {endpoints.milvus_uri}")
    print(f"dev keys: {data / 'keys'} (jwt-private.pem signs tokens); each service's settings: {data / 'env'}")
    print(f"a token for any role: {python} -m services.common.auth mint --role viewer --tenant {TENANT}")
    print("  (roles: viewer, analyst, admin, device; repeat --role for several)")
    print(f"verify the audit chain: {python} -m services.audit verify --tenant {TENANT}\n")


def up(source: str | None, data: Path) -> None:
    started = time.monotonic()
    processes: list[ManagedProcess] = []
    others: list[EmbeddedPostgres] = []
    trust = load_or_create_trust(data / "keys" / "nats")
    keys = load_or_create_keys(data / "keys")
    try:
        endpoints = start_infrastructure(data, processes, others, trust)
        services = start_services(endpoints, keys, DEFAULT_PORTS, data / "logs")
        processes.extend(services)
        wait_until_ready(services, DEFAULT_PORTS)
        console = start_console(keys, DEFAULT_PORTS, CONSOLE_PORT, data / "logs")
        processes.append(console)
        for name in DEFAULT_PORTS:  # for the commands run beside it (`python -m services.audit verify`, ...)
            write_dev_settings(data / "env", name, service_environment(name, endpoints, keys, DEFAULT_PORTS[name]))
        wait_until_ready([console], {CONSOLE: CONSOLE_PORT})
        print(f"services ready in {time.monotonic() - started:.0f}s (logs in {data / 'logs'})", flush=True)
        token = issue_token(
            keys.private_pem, subject="dev", tenant_id=TENANT, roles=["admin", "analyst"], issuer="revisit",
            audience="revisit",
        )  # fmt: skip
        register_demo(token)
        device = demo_device_credentials(token, endpoints, data)
        start_retention_scheduler(endpoints, keys, DEFAULT_PORTS, data / "logs")
        print(f"retention jobs at start and every 24 h: {', '.join(retention_services(endpoints))}", flush=True)
        # the demo's two days are the two before today, whatever the hour: never in the future
        today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=1)
        admin = endpoints.nats_users.get(ADMIN_USER)
        faces_before = asyncio.run(faces_stream_position(endpoints.nats_url, admin))
        if source:
            today = datetime.now(UTC)
            run_edge(source, today, endpoints, data, device)
            first_day = today
        else:
            days: list[DemoDay] = build_demo_days(
                shared_dir() / "faces", data / "demo", today - timedelta(days=1), today
            )
            for day in days:
                run_edge(day.folder, day.clock_start, endpoints, data, device)
            first_day = days[0].clock_start
        url = f"http://127.0.0.1:{DEFAULT_PORTS['reporting']}/v1/reports/visitors"
        params = {"site_id": SITE, "from": f"{first_day:%Y-%m-%d}", "to": f"{today:%Y-%m-%d}", "granularity": "day"}
        totals = wait_for_visits(url, token, params)
        print(f"\nfirst report after {time.monotonic() - started:.0f}s: {totals}")
        print_ingest_summary(endpoints.nats_url, admin, TENANT, faces_before)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        print(f"\nreporting API: http://127.0.0.1:{DEFAULT_PORTS['reporting']}/docs")
        print(f"dev token (tenant {TENANT}, admin+analyst, 12 h):\n{token}\n")
        print(f'curl -s -H "Authorization: Bearer {token}" "{url}?{query}"\n')
        print_newcomer_lines(token, endpoints, data)
        print("Ctrl-C stops everything; data stays in .dev/ (delete it to start afresh).", flush=True)
        while True:
            time.sleep(3600)
    finally:
        print("stopping...", flush=True)
        for process in reversed(processes):
            process.stop()
        for other in others:
            other.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("up", help="run the whole system locally and feed it the demo")
    command.add_argument("--source", default=os.environ.get("SOURCE") or None, help="video, image folder or RTSP URL")
    command.add_argument("--data", type=Path, default=Path(".dev"), help="where state persists between runs")
    args = parser.parse_args()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (background)
        signal.signal(stop_signal, signal.default_int_handler)
    try:
        up(args.source, args.data.resolve())
    except KeyboardInterrupt:
        pass
    except (InfraError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
