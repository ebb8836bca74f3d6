"""Builds reporting's adapters from settings; the only place they are constructed."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from faststream.nats import NatsBroker

from schemas import subjects
from schemas.base import utc_now
from services.common.batch_consumer import running_consumers, stop_at_shutdown
from services.common.bus import EventPublisher, connect_broker, event_publisher, jetstream_publisher
from services.common.connections import postgres_and_broker
from services.common.http import create_app, nats_ready
from services.common.postgres import connect_postgres
from services.reporting.adapters.postgres import ROLE, SCHEMA, VisitStore
from services.reporting.adapters.registry import open_site_zones
from services.reporting.adapters.visit_pages import VisitPages
from services.reporting.api import router
from services.reporting.business_metrics import BusinessMetrics, refreshed_business_metrics
from services.reporting.config import ReportingSettings
from services.reporting.consumers import register_consumers
from services.reporting.domain.sites import SiteZones
from services.reporting.domain.visits import VisitRules
from services.reporting.handlers import PARTITIONS_AHEAD

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
RETENTION_STREAMS = (subjects.AUDIT_STREAM,)


@dataclass
class Reporting:
    settings: ReportingSettings
    broker: NatsBroker
    store: VisitStore
    site_zones: SiteZones
    app: FastAPI


@asynccontextmanager
async def bootstrap(settings: ReportingSettings) -> AsyncIterator[Reporting]:
    """Postgres (migrated) and NATS, the registry's sites mirrored (every report needs its site's zone), the
    consumers wired and the API built. The batch consumer of matched sightings consumes from here on; the
    FastStream subscribers from `broker.start()`."""
    async with postgres_and_broker(settings, SERVICE, SCHEMA, ROLE, MIGRATIONS, STREAMS) as (pool, broker):
        store = VisitStore(pool)
        await store.ensure_partitions(utc_now(), utc_now() + PARTITIONS_AHEAD)
        rules = visit_rules(settings)
        site_zones, mirror = await open_site_zones(broker.connection, settings.nats_stream_replicas)
        try:
            publish = jetstream_publisher(broker.connection, SERVICE)
            consumers = register_consumers(broker, settings, store, rules, publish)
            app = create_app(SERVICE, {"nats": nats_ready(broker), "postgres": store.ping}, settings, (router,))
            pages = VisitPages(pool)
            app.state.visit_store, app.state.visit_pages = store, pages
            app.state.site_zones, app.state.visit_gap = site_zones, rules.gap
            metrics = BusinessMetrics(pages, site_zones, rules.gap, settings.business_metrics_max_sites)
            stop_at_shutdown(app, consumers)
            async with (
                running_consumers(broker.connection, consumers),
                refreshed_business_metrics(metrics, settings.business_metrics_seconds),
            ):
                yield Reporting(settings, broker, store, site_zones, app)
        finally:
            await mirror.stop()


def visit_rules(settings: ReportingSettings) -> VisitRules:
    return VisitRules(
        gap=timedelta(minutes=settings.visit_gap_minutes), lookback=timedelta(days=settings.returning_lookback_days)
    )


@dataclass
class ReportingRetention:
    """What reporting's retention job needs, and nothing else: no consumers, no HTTP server."""

    settings: ReportingSettings
    broker: NatsBroker
    store: VisitStore
    rules: VisitRules
    publish: EventPublisher


@asynccontextmanager
async def bootstrap_retention(settings: ReportingSettings) -> AsyncIterator[ReportingRetention]:
    """Postgres (migrated, as the service role) and NATS (policies, the run lease, audit)."""
    timeout = settings.startup_timeout_seconds
    pool = await connect_postgres(settings.postgres_dsn, SCHEMA, ROLE, MIGRATIONS, timeout, max_size=2)
    try:
        broker = await connect_broker(settings, SERVICE, RETENTION_STREAMS)
        try:
            store = VisitStore(pool)
            yield ReportingRetention(settings, broker, store, visit_rules(settings), event_publisher(broker, SERVICE))
        finally:
            await broker.stop()
    finally:
        await pool.close()
