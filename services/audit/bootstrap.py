"""Builds audit's adapters from settings; the only place they are constructed."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from faststream.nats import NatsBroker

from schemas import subjects
from services.audit.adapters.postgres import ROLE, SCHEMA, AuditLog
from services.audit.api import router
from services.audit.config import AuditSettings
from services.audit.consumers import register_consumers
from services.common.connections import postgres_and_broker
from services.common.http import create_app, nats_ready
from services.common.postgres import connect_postgres

SERVICE = "audit"
STREAMS = (subjects.AUDIT_STREAM, subjects.IDENTITY_STREAM, subjects.DEADLETTER_STREAM)
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Audit:
    settings: AuditSettings
    broker: NatsBroker
    log: AuditLog
    app: FastAPI


async def connect_audit_log(settings: AuditSettings) -> tuple[asyncpg.Pool, AuditLog]:
    pool = await connect_postgres(settings.postgres_dsn, SCHEMA, ROLE, MIGRATIONS, settings.startup_timeout_seconds)
    return pool, AuditLog(pool)


@asynccontextmanager
async def bootstrap(settings: AuditSettings) -> AsyncIterator[Audit]:
    async with postgres_and_broker(settings, SERVICE, SCHEMA, ROLE, MIGRATIONS, STREAMS) as (pool, broker):
        log = AuditLog(pool)
        register_consumers(broker, settings, log)
        app = create_app(SERVICE, {"nats": nats_ready(broker), "postgres": log.ping}, settings, (router,))
        app.state.audit_log = log
        yield Audit(settings, broker, log, app)
