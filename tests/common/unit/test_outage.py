"""Which failures the consumers wait out (services/common/outage.py)."""

import asyncio
from pathlib import Path

import asyncpg
import nats.errors
import nats.js.errors
import pytest

from services.common.outage import is_outage


class EndpointConnectionError(Exception):
    """Named like botocore's, which the classifier matches by name."""


@pytest.mark.parametrize(
    "error",
    [
        nats.js.errors.NoStreamResponseError(),
        nats.errors.ConnectionClosedError(),
        nats.errors.TimeoutError(),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        ConnectionRefusedError(111, "Connection refused"),
        EndpointConnectionError("Could not connect to the endpoint URL"),
    ],
)
def test_unreachable_dependencies_are_outages(error: BaseException) -> None:
    assert is_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad embedding"),
        KeyError("person"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
        nats.js.errors.BadRequestError(),
    ],
)
def test_failures_of_the_message_itself_are_not(error: BaseException) -> None:
    assert not is_outage(error)


def test_a_wrapped_outage_is_still_one() -> None:
    try:
        try:
            raise nats.js.errors.NoStreamResponseError()
        except nats.js.errors.NoStreamResponseError as cause:
            raise RuntimeError("publishing FaceMatched failed") from cause
    except RuntimeError as wrapped:
        assert is_outage(wrapped)


async def test_a_unix_socket_that_is_not_there_is_an_outage(tmp_path: Path) -> None:
    """The embedded Postgres's socket file is gone while it restarts; asyncpg then fails with FileNotFoundError."""
    with pytest.raises(FileNotFoundError) as raised:
        await asyncio.open_unix_connection(str(tmp_path / ".s.PGSQL.5432"))
    assert is_outage(raised.value)


def test_any_other_missing_file_is_not(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as raised:
        (tmp_path / "model.onnx").read_bytes()
    assert not is_outage(raised.value)


async def test_a_missing_postgres_socket_is_an_outage_a_missing_file_is_not(tmp_path: Path) -> None:
    """While Postgres restarts its Unix socket file is gone and asyncpg raises a bare FileNotFoundError."""
    with pytest.raises(FileNotFoundError) as stopped:
        await asyncpg.connect(host=str(tmp_path / "no-postgres-here"), user="revisit", database="revisit", timeout=2)
    assert is_outage(stopped.value)
    with pytest.raises(FileNotFoundError) as missing:
        (tmp_path / "no-such-file").read_text()
    assert not is_outage(missing.value)
