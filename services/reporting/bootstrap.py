"""Builds reporting's adapters from settings; the only place they are constructed."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from faststream.nats import NatsBroker

from schemas import subjects
from services.common.bus import event_publisher
from services.common.connections import postgres_and_broker
from services.common.http import create_app, nats_ready
from services.reporting.adapters.postgres import ROLE, SCHEMA, VisitStore
from services.reporting.api import router
from services.reporting.config import ReportingSettings
from services.reporting.consumers import register_consumers
from services.reporting.domain.visits import VisitRules

SERVICE = "reporting"
STREAMS = (
    subjects.FACES_STREAM,
    subjects.IDENTITY_STREAM,
    subjects.VISITS_STREAM,
    subjects.OPERATIONS_STREAM,
    subjects.AUDIT_STREAM,
    subjects.DEADLETTER_STREAM,
)
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Reporting:
    settings: ReportingSettings
    broker: NatsBroker
    store: VisitStore
    app: FastAPI


@asynccontextmanager
async def bootstrap(settings: ReportingSettings) -> AsyncIterator[Reporting]:
    async with postgres_and_broker(settings, SERVICE, SCHEMA, ROLE, MIGRATIONS, STREAMS) as (pool, broker):
        store = VisitStore(pool)
        rules = VisitRules(
            gap=timedelta(minutes=settings.visit_gap_minutes),
            lookback=timedelta(days=settings.returning_lookback_days),
        )
        register_consumers(broker, settings, store, rules, event_publisher(broker, SERVICE))
        app = create_app(SERVICE, {"nats": nats_ready(broker), "postgres": store.ping}, settings, (router,))
        app.state.visit_store = store
        yield Reporting(settings, broker, store, app)
