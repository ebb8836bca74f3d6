"""Builds audit's adapters from settings; the only place they are constructed."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI
from faststream.nats import NatsBroker

from schemas import subjects
from services.audit import handlers
from services.audit.adapters.checkpoints import CheckpointStore
from services.audit.adapters.postgres import ROLE, SCHEMA, AuditLog
from services.audit.api import router
from services.audit.config import AuditSettings
from services.audit.consumers import register_consumers
from services.audit.domain.checkpoint import CheckpointSchedule, load_public_keys, load_signing_key
from services.audit.handlers import Anchoring, anchor_due_heads
from services.common.batch_consumer import running_consumers, stop_at_shutdown
from services.common.bus import connect_broker
from services.common.http import create_app, nats_ready
from services.common.logging import get_logger
from services.common.postgres import connect_postgres, connect_postgres_as_login

STREAMS = (subjects.AUDIT_STREAM, subjects.IDENTITY_STREAM, subjects.DEADLETTER_STREAM)
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = handlers.SERVICE
log = get_logger(__name__)


@dataclass
class Audit:
    settings: AuditSettings
    broker: NatsBroker
    log: AuditLog
    anchoring: Anchoring
    app: FastAPI


async def connect_audit_pool(settings: AuditSettings) -> asyncpg.Pool:
    """The pool of the runtime login; the owner login only migrates. Without a migration DSN (dev and test
    only, see AuditSettings) the old scheme: the owner's pool SET ROLEs, which RESET ROLE undoes."""
    timeout = settings.startup_timeout_seconds
    if settings.postgres_migration_dsn is None:
        log.warning("audit_login_owns_its_table", hint="set REVISIT_POSTGRES_MIGRATION_DSN to a separate owner login")
        return await connect_postgres(settings.postgres_dsn, SCHEMA, ROLE, MIGRATIONS, timeout)
    return await connect_postgres_as_login(
        settings.postgres_dsn, settings.postgres_migration_dsn, SCHEMA, ROLE, MIGRATIONS, timeout
    )


def verification_keys(settings: AuditSettings) -> list[Ed25519PublicKey]:
    """The current key's public half and those of earlier keys, so checkpoints signed before a rotation verify."""
    current = load_signing_key(settings.audit_signing_key).public_key()
    return [current, *load_public_keys(settings.audit_previous_public_keys)]


async def anchor_periodically(anchoring: Anchoring, every_seconds: float) -> None:
    """Checkpoint heads that waited `every_seconds`; a failed round (NATS away) is retried on the next tick."""
    tick = min(every_seconds / 4, 5.0)
    while True:
        await asyncio.sleep(tick)
        try:
            await anchor_due_heads(anchoring)
        except Exception as error:  # the heads stay pending and are signed on a later tick
            log.warning("audit_checkpoint_failed", error=f"{type(error).__name__}: {error}")


def anchor_at_shutdown(anchoring: Anchoring) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Sign the pending heads when HTTP shuts down: uvicorn re-raises SIGTERM once it has stopped, so code
    after the server (the end of `bootstrap`) does not run in a terminated process."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await anchor_due_heads(anchoring, everything=True)

    return lifespan


@asynccontextmanager
async def bootstrap(settings: AuditSettings) -> AsyncIterator[Audit]:
    pool = await connect_audit_pool(settings)
    try:
        broker = await connect_broker(settings, SERVICE, STREAMS)
        # Checkpoints get a connection of their own: `serve` stops the broker before this context exits, and
        # the heads still pending then must be signed and stored after that.
        credentials = str(settings.nats_credentials) if settings.nats_credentials else None
        checkpoint_connection = await nats.connect(settings.nats_url, connect_timeout=5, user_credentials=credentials)
        try:
            store = CheckpointStore(checkpoint_connection.jetstream())
            await store.declare()
            audit_log = AuditLog(pool)
            schedule = CheckpointSchedule(
                settings.audit_checkpoint_every_records, settings.audit_checkpoint_every_seconds
            )
            anchoring = Anchoring(load_signing_key(settings.audit_signing_key), schedule, store)
            consumers = register_consumers(broker, settings, audit_log, anchoring)
            app = create_app(SERVICE, {"nats": nats_ready(broker), "postgres": audit_log.ping}, settings, (router,))
            app.state.audit_log, app.state.checkpoints = audit_log, store
            app.state.public_keys = verification_keys(settings)
            app.router.lifespan_context = anchor_at_shutdown(anchoring)
            stop_at_shutdown(app, consumers)
            ticker = asyncio.create_task(anchor_periodically(anchoring, settings.audit_checkpoint_every_seconds))
            try:
                async with running_consumers(broker.connection, consumers):
                    yield Audit(settings, broker, audit_log, anchoring, app)
            finally:
                ticker.cancel()
                await anchor_due_heads(anchoring, everything=True)  # leave nothing this process wrote unanchored
        finally:
            await checkpoint_connection.close()
            await broker.stop()
    finally:
        await pool.close()
