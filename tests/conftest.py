"""Session-wide real infrastructure for the tests: NATS with JetStream, Postgres, an S3 server, keys.

By default every run starts its own (the same code `make dev` uses), so a fresh machine needs nothing
running. NATS runs in operator mode (JWT auth, anonymous connections refused): each service fixture
connects as that service's least-privilege user (`nats_users`), test code as `admin` (everything in the
application account), whose `.creds` path is exported as REVISIT_NATS_CREDENTIALS for settings and
subprocesses that are given no other. To reuse running servers set REVISIT_TEST_NATS_URL with
REVISIT_TEST_NATS_CREDENTIALS (a user allowed everything; every service uses it; its Revisit streams are
deleted first) and/or REVISIT_TEST_POSTGRES_DSN (an admin DSN; each run gets a new database)."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from devstack.infra import S3_ACCESS_KEY, S3_SECRET_KEY, free_port, start_nats, start_postgres, start_s3
from devstack.nats_auth import (
    ADMIN_USER,
    NatsTrust,
    load_or_create_trust,
    write_device_credentials,
    write_user_credentials,
)
from devstack.stack import SigningKeys, load_or_create_keys, shared_dir
from schemas.subjects import ALL_STREAMS
from services.common.auth import issue_token
from services.common.bus import declare_streams, open_staff_gallery
from services.common.nats_auth import SERVICE_ACCESS, DeviceScope
from tests.support import CREDENTIALS_ENV


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("revisit")


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not (path / "models").is_dir():
        pytest.fail(f"../shared with models and faces is needed beside the repository (looked in {path})")
    return path


@pytest.fixture(scope="session")
def nats_trust(run_dir: Path) -> NatsTrust:
    """Operator, system and application account of this run's NATS server."""
    return load_or_create_trust(run_dir / "keys" / "nats")


@pytest.fixture(scope="session")
def nats_users(run_dir: Path, nats_trust: NatsTrust) -> Iterator[dict[str, Path]]:
    """`.creds` by user: each service, `admin` and `system` (or the external server's one user for all).
    `admin`'s is exported as REVISIT_NATS_CREDENTIALS for the session."""
    external = os.environ.get("REVISIT_TEST_NATS_CREDENTIALS")
    if external:
        users = dict.fromkeys([*SERVICE_ACCESS, ADMIN_USER], Path(external))
    else:
        users = write_user_credentials(nats_trust, run_dir / "nats-users")
    previous = os.environ.get(CREDENTIALS_ENV)
    os.environ[CREDENTIALS_ENV] = str(users[ADMIN_USER])
    yield users
    if previous is None:
        os.environ.pop(CREDENTIALS_ENV, None)
    else:
        os.environ[CREDENTIALS_ENV] = previous


@pytest.fixture(scope="session")
def nats_admin_credentials(nats_users: dict[str, Path]) -> Path:
    return nats_users[ADMIN_USER]


@pytest.fixture(scope="session")
def mint_device(nats_trust: NatsTrust, run_dir: Path) -> Callable[[str, str, tuple[str, ...]], Path]:
    """`.creds` of a device (an edge box) of a tenant's site and cameras, as identity's registry will mint them."""

    def mint(tenant_id: str, site_id: str, cameras: tuple[str, ...]) -> Path:
        name = f"edge-{tenant_id}-{site_id}-{uuid.uuid4().hex[:6]}"
        return write_device_credentials(nats_trust, DeviceScope(tenant_id, site_id, cameras), name, run_dir / "devices")

    return mint


@pytest.fixture(scope="session")
def nats_url(run_dir: Path, nats_trust: NatsTrust, nats_users: dict[str, Path]) -> Iterator[str]:
    """The server, with every stream and the staff gallery declared (as the services would at their start),
    so tests that run no service (the edge's, which declares nothing) find them."""
    external = os.environ.get("REVISIT_TEST_NATS_URL")
    admin = nats_users[ADMIN_USER]
    process = None
    if external:
        url = external
        asyncio.run(_delete_streams(url, admin))
    else:
        url, process = start_nats(run_dir / "nats", run_dir / "logs", free_port(), nats_trust)
    asyncio.run(_declare_all(url, admin))
    yield url
    if process is not None:
        process.stop()


async def _delete_streams(url: str, credentials: Path) -> None:
    connection = await nats.connect(url, user_credentials=str(credentials))
    for spec in ALL_STREAMS:
        try:
            await connection.jetstream().delete_stream(spec.name)
        except NotFoundError:
            pass
    await connection.close()


async def _declare_all(url: str, credentials: Path) -> None:
    connection = await nats.connect(url, user_credentials=str(credentials))
    await declare_streams(connection, ALL_STREAMS)
    await open_staff_gallery(connection)
    await connection.close()


@pytest.fixture(scope="session")
def postgres_dsn(run_dir: Path) -> Iterator[str]:
    """A fresh, empty database for this run."""
    admin = os.environ.get("REVISIT_TEST_POSTGRES_DSN")
    embedded = None
    if not admin:
        embedded = start_postgres(run_dir / "postgres", database="postgres")
        admin = embedded.dsn
    database = f"revisit_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(admin, database))
    parts = urlsplit(admin)
    yield urlunsplit(parts._replace(path=f"/{database}"))
    if embedded is not None:
        embedded.stop()


async def _create_database(admin_dsn: str, database: str) -> None:
    connection = await asyncpg.connect(admin_dsn)
    await connection.execute(f'CREATE DATABASE "{database}"')
    await connection.close()


@pytest.fixture(scope="session")
def s3_endpoint(run_dir: Path) -> Iterator[str]:
    endpoint, process = start_s3(run_dir / "s3", run_dir / "logs", free_port())
    yield endpoint
    process.stop()


@pytest.fixture(scope="session")
def s3_credentials() -> tuple[str, str]:
    return S3_ACCESS_KEY, S3_SECRET_KEY


@pytest.fixture(scope="session")
def keys(run_dir: Path) -> SigningKeys:
    return load_or_create_keys(run_dir / "keys")


@pytest.fixture(scope="session")
def make_token(keys: SigningKeys) -> Callable[..., str]:
    def make(tenant_id: str, roles: list[str], subject: str = "tester") -> str:
        return issue_token(
            keys.private_pem,
            subject=subject,
            tenant_id=tenant_id,
            roles=roles,
            issuer="revisit",
            audience="revisit",
        )

    return make


@pytest.fixture
def milvus_uri(tmp_path: Path) -> str:
    return str(tmp_path / "milvus.db")


@pytest.fixture(scope="session")
async def nats_connection(nats_url: str, nats_users: dict[str, Path]) -> AsyncIterator[NatsClient]:
    """A connection as `admin`: everything in the application account, as test code needs."""
    connection = await nats.connect(nats_url, user_credentials=str(nats_users[ADMIN_USER]))
    yield connection
    await connection.close()
