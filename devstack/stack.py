"""The running system: dev keys, each service's environment, starting the services and waiting until ready."""

import asyncio
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from devstack.infra import S3_ACCESS_KEY, S3_SECRET_KEY, InfraError, ManagedProcess, check_port_free, spawn

SERVICE_NAMES = ("ingest", "matcher", "identity", "reporting", "audit")
RETENTION_SERVICES = ("ingest", "matcher", "identity", "reporting")
RETENTION_EVERY_SECONDS = 24 * 3600
DEFAULT_PORTS = {"ingest": 8001, "matcher": 8002, "identity": 8003, "reporting": 8004, "audit": 8005}
CONSOLE, CONSOLE_PORT = "console", 8080
CONSOLE_APIS = ("identity", "matcher", "reporting", "audit")
# The audit service's runtime login in dev and tests: separate from the owner login that migrates, so it
# cannot rewrite the chain (docs/operations.md). The password is a dev one, like the embedded S3 keys.
AUDIT_LOGIN, AUDIT_LOGIN_PASSWORD = "revisit_audit_app", "revisit-dev-audit"


@dataclass(frozen=True)
class Endpoints:
    nats_url: str
    postgres_dsn: str
    s3_endpoint: str
    milvus_uri: str
    nats_users: dict[str, Path] = field(default_factory=dict)
    """`.creds` of each service's NATS user (devstack/nats_auth.py); empty for a server given from outside,
    whose one user then comes from REVISIT_NATS_CREDENTIALS in the environment."""
    device_authority: dict[str, str] = field(default_factory=dict)
    """Identity's REVISIT_NATS_* keys that mint and revoke device users (`device_authority_environment`)."""


@dataclass(frozen=True)
class SigningKeys:
    private_pem: str
    public_pem: str
    audit_private_pem: str


def load_or_create_keys(directory: Path) -> SigningKeys:
    """An RS256 key pair for dev tokens and the audit checkpoint key, kept under `directory` so tokens and
    checkpoints still verify after a restart."""
    private_path, public_path = directory / "jwt-private.pem", directory / "jwt-public.pem"
    audit_path = directory / "audit-signing.pem"
    if not private_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private_path.chmod(0o600)
        public_path.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    if not audit_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        audit_key = ed25519.Ed25519PrivateKey.generate()
        audit_path.write_bytes(
            audit_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        audit_path.chmod(0o600)
    return SigningKeys(private_path.read_text(), public_path.read_text(), audit_path.read_text())


def audit_login_dsn(admin_dsn: str) -> str:
    """The admin DSN with the audit runtime login in place of its user."""
    parts = urlsplit(admin_dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{AUDIT_LOGIN}:{AUDIT_LOGIN_PASSWORD}@{host}"))


async def create_audit_login(admin_dsn: str) -> None:
    """What a DBA does once in production: a LOGIN role for the audit service that owns nothing (the
    service grants it `revisit_audit` at start)."""
    connection = await asyncpg.connect(admin_dsn)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", AUDIT_LOGIN):
            await connection.execute(f"CREATE ROLE {AUDIT_LOGIN} LOGIN PASSWORD '{AUDIT_LOGIN_PASSWORD}'")
    finally:
        await connection.close()


def service_environment(
    name: str, endpoints: Endpoints, keys: SigningKeys, port: int, environment: str = "dev"
) -> dict[str, str]:
    """The REVISIT_* variables one service reads (see each service's config.py and docs/configuration.md)."""
    env = {
        "REVISIT_ENVIRONMENT": environment,
        "REVISIT_NATS_URL": endpoints.nats_url,
        "REVISIT_HTTP_HOST": "127.0.0.1",
        "REVISIT_HTTP_PORT": str(port),
        "REVISIT_JWT_PUBLIC_KEY": keys.public_pem,
        "REVISIT_STARTUP_TIMEOUT_SECONDS": "30",
    }
    if name in endpoints.nats_users:
        env["REVISIT_NATS_CREDENTIALS"] = str(endpoints.nats_users[name])
    if name == "identity":
        env |= endpoints.device_authority
    if name in ("ingest", "identity"):  # identity signs links to the crops ingest stores
        env |= {
            "REVISIT_S3_ENDPOINT_URL": endpoints.s3_endpoint,
            # an S3 endpoint given to `make dev` comes with its keys; the embedded one has fixed dev keys
            "REVISIT_S3_ACCESS_KEY": os.environ.get("REVISIT_S3_ACCESS_KEY", S3_ACCESS_KEY),
            "REVISIT_S3_SECRET_KEY": os.environ.get("REVISIT_S3_SECRET_KEY", S3_SECRET_KEY),
        }
    if name == "matcher":
        env |= {"REVISIT_MILVUS_URI": endpoints.milvus_uri}
    elif name == "audit":
        env |= {
            "REVISIT_POSTGRES_DSN": audit_login_dsn(endpoints.postgres_dsn),
            "REVISIT_POSTGRES_MIGRATION_DSN": endpoints.postgres_dsn,
            "REVISIT_AUDIT_SIGNING_KEY": keys.audit_private_pem,
        }
    elif name != "ingest":
        env |= {"REVISIT_POSTGRES_DSN": endpoints.postgres_dsn}
    return env


def start_services(
    endpoints: Endpoints, keys: SigningKeys, ports: dict[str, int], log_dir: Path, environment: str = "dev"
) -> list[ManagedProcess]:
    """Each service as its own process (`python -m services.<name>`), as in production. A taken port stops the
    start before any is spawned: a stale service there would answer /readyz for the new one."""
    for name in SERVICE_NAMES:
        check_port_free(ports[name], f"service {name}")
    python = sys.executable
    asyncio.run(create_audit_login(endpoints.postgres_dsn))
    return [
        spawn(
            name,
            [python, "-m", f"services.{name}"],
            log_dir,
            {**service_environment(name, endpoints, keys, ports[name], environment), "PYTHONUNBUFFERED": "1"},
        )
        for name in SERVICE_NAMES
    ]


def console_environment(
    keys: SigningKeys, ports: dict[str, int], console_port: int, environment: str = "dev"
) -> dict[str, str]:
    """The console's REVISIT_* variables: the services' URLs, the token key, the edge's model pack for staff photos."""
    apis = {f"REVISIT_{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}" for name in CONSOLE_APIS}
    return {
        "REVISIT_ENVIRONMENT": environment,
        "REVISIT_HTTP_HOST": "127.0.0.1",
        "REVISIT_HTTP_PORT": str(console_port),
        "REVISIT_JWT_PUBLIC_KEY": keys.public_pem,
        **apis,
        "REVISIT_CONSOLE_MODEL_DIR": str(shared_dir() / "models"),
        "REVISIT_CONSOLE_SECURE_COOKIE": "false",  # served on http://127.0.0.1
        "REVISIT_STARTUP_TIMEOUT_SECONDS": "30",
    }  # fmt: skip


def start_console(
    keys: SigningKeys, ports: dict[str, int], console_port: int, log_dir: Path, environment: str = "dev"
) -> ManagedProcess:
    """`python -m services.console`, its own process as in production (docs/console.md)."""
    env = {**console_environment(keys, ports, console_port, environment), "PYTHONUNBUFFERED": "1"}
    return spawn(CONSOLE, [sys.executable, "-m", "services.console"], log_dir, env)


def retention_services(endpoints: Endpoints) -> tuple[str, ...]:
    """The services whose retention job `make dev` can run beside the running services: not the matcher's on a
    Milvus Lite file, which only one process may open (the running matcher has it)."""
    lite = "://" not in endpoints.milvus_uri
    return tuple(name for name in RETENTION_SERVICES if not (lite and name == "matcher"))


def run_retention_jobs(endpoints: Endpoints, keys: SigningKeys, ports: dict[str, int], log_dir: Path) -> None:
    """Each service's `python -m services.<name> retention` once, one after the other, as the chart's CronJobs
    run them; output appended to `<log_dir>/<name>-retention.log`. A failed job is reported, not fatal."""
    for name in retention_services(endpoints):
        env = {**os.environ, **service_environment(name, endpoints, keys, ports[name]), "PYTHONUNBUFFERED": "1"}
        with (log_dir / f"{name}-retention.log").open("a") as log:
            code = subprocess.run(
                [sys.executable, "-m", f"services.{name}", "retention"], env=env, stdout=log, stderr=log, check=False
            ).returncode
        if code != 0:
            print(f"retention job of {name} failed ({code}): see {log_dir / f'{name}-retention.log'}", flush=True)


def start_retention_scheduler(
    endpoints: Endpoints, keys: SigningKeys, ports: dict[str, int], log_dir: Path
) -> threading.Thread:
    """`make dev`'s stand-in for the chart's CronJobs: the retention jobs at start, then every 24 hours, in a
    daemon thread (it dies with `make dev`; the jobs are idempotent, so a run cut short is simply redone)."""

    def loop() -> None:
        while True:
            run_retention_jobs(endpoints, keys, ports, log_dir)
            time.sleep(RETENTION_EVERY_SECONDS)

    thread = threading.Thread(target=loop, name="retention-scheduler", daemon=True)
    thread.start()
    return thread


def wait_until_ready(processes: list[ManagedProcess], ports: dict[str, int], timeout: float = 120) -> None:
    """Poll every service's /readyz; a service that exits is reported with its log's last lines."""
    deadline = time.monotonic() + timeout
    pending = {process.name: process for process in processes}
    while pending and time.monotonic() < deadline:
        for name, process in list(pending.items()):
            if process.process.poll() is not None:
                tail = process.log_path.read_text(errors="replace")[-2000:]
                raise InfraError(f"service {name} exited with {process.process.returncode}:\n{tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{ports[name]}/readyz", timeout=1).status_code == 200:
                    del pending[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    if pending:
        raise InfraError(
            f"not ready after {timeout:.0f}s: {', '.join(pending)} (logs in {processes[0].log_path.parent})"
        )


def shared_dir() -> Path:
    """`../shared` beside the repository (models and face photos for tests and the demo)."""
    configured = os.environ.get("REVISIT_SHARED_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared"
