"""Session-wide real infrastructure for the tests: NATS with JetStream, Postgres, an S3 server, keys.

By default every run starts its own (the same code `make dev` uses), so a fresh machine needs nothing
running. To reuse running servers set REVISIT_TEST_NATS_URL (its Revisit streams are deleted first)
and/or REVISIT_TEST_POSTGRES_DSN (an admin DSN; each run gets a new database)."""

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
from devstack.stack import SigningKeys, load_or_create_keys, shared_dir
from schemas.subjects import ALL_STREAMS
from services.common.auth import issue_token


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
def nats_url(run_dir: Path) -> Iterator[str]:
    external = os.environ.get("REVISIT_TEST_NATS_URL")
    if external:
        asyncio.run(_delete_streams(external))
        yield external
        return
    url, process = start_nats(run_dir / "nats", run_dir / "logs", free_port())
    yield url
    process.stop()


async def _delete_streams(url: str) -> None:
    connection = await nats.connect(url)
    for spec in ALL_STREAMS:
        try:
            await connection.jetstream().delete_stream(spec.name)
        except NotFoundError:
            pass
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
    endpoint, process = start_s3(run_dir / "logs", free_port())
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
async def nats_connection(nats_url: str) -> AsyncIterator[NatsClient]:
    connection = await nats.connect(nats_url)
    yield connection
    await connection.close()
