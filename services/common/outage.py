"""Which failures are an unreachable dependency (NATS, Postgres, S3) rather than a message that cannot be handled.

A consumer waits an outage out: a message that failed only because a server was restarting is retried until the
server is back, however long that takes, and is never dead-lettered for it. Only failures of the message itself
count towards `max_deliveries`. The chaos run showed why: while NATS restarted, the matcher's publishes failed with
`NoStreamResponseError` through all of their deliveries and 655 accepted events were dead-lettered."""

import asyncio
import traceback

import asyncpg
import nats.errors
import nats.js.errors

NATS_OUTAGES: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.TimeoutError,
    nats.errors.FlushTimeoutError,
    nats.errors.UnexpectedEOF,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)
"""The server is gone, restarting or not answering in time; JetStream has no leader yet."""

POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
"""The server is shutting down, starting up, refusing connections, or closed ours under us."""

TRANSPORT_OUTAGES: tuple[type[BaseException], ...] = (ConnectionError, asyncio.TimeoutError, TimeoutError)
"""Sockets refused or reset (S3, Postgres before a connection exists) and timeouts waiting for any of them."""


def is_outage(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, says a dependency is unreachable right now.

    Chained causes count because adapters often wrap the transport's error in their own."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, NATS_OUTAGES + POSTGRES_OUTAGES + TRANSPORT_OUTAGES):
            return True
        if (
            _is_closed_postgres_connection(current)
            or _is_missing_postgres_socket(current)
            or _is_s3_connection_error(current)
        ):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _is_closed_postgres_connection(error: BaseException) -> bool:
    """asyncpg's `InterfaceError` is also a programming error (two queries at once on a connection): only the
    closed-connection one is an outage."""
    return isinstance(error, asyncpg.exceptions.InterfaceError) and "closed" in str(error)


def _is_missing_postgres_socket(error: BaseException) -> bool:
    """asyncpg connecting over a Unix socket whose file is gone (the server is stopped or restarting) raises a bare
    `FileNotFoundError`: an outage when asyncpg raised it, not any missing file (the chaos run's Postgres restart
    sent identity's sightings towards the dead-letter subject with it)."""
    return isinstance(error, FileNotFoundError) and any(
        "asyncpg" in frame.f_code.co_filename for frame, _ in traceback.walk_tb(error.__traceback__)
    )


def _is_s3_connection_error(error: BaseException) -> bool:
    """botocore's and aiohttp's connection failures, matched by name: the services that have no S3 import neither."""
    names = {klass.__name__ for klass in type(error).__mro__}
    return bool(
        names & {"EndpointConnectionError", "ConnectionClosedError", "ClientConnectorError", "ServerDisconnectedError"}
    )
