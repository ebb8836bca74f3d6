"""Builds identity's adapters from settings; the only place they are constructed."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from faststream.nats import NatsBroker

from schemas import subjects
from services.common.batch_consumer import running_consumers, stop_at_shutdown
from services.common.bus import EventPublisher, connect_broker, event_publisher
from services.common.connections import postgres_and_broker
from services.common.http import create_app, nats_ready
from services.common.logging import get_logger
from services.common.postgres import connect_postgres
from services.identity import handlers
from services.identity.adapters.crops import CropLinks
from services.identity.adapters.devices import DeviceStore, NatsAuthority
from services.identity.adapters.lifecycle import LifecycleStore
from services.identity.adapters.postgres import ROLE, SCHEMA, PersonDirectory
from services.identity.adapters.registry import RegistryBucket, RegistryStore
from services.identity.adapters.staff_gallery import StaffGalleryStore
from services.identity.api import router
from services.identity.config import IdentitySettings
from services.identity.consumers import register_consumers
from services.identity.registry import router as registry_router
from services.identity.staff import router as staff_router

SERVICE = "identity"
STREAMS = (
    subjects.FACES_STREAM,
    subjects.IDENTITY_STREAM,
    subjects.OPERATIONS_STREAM,
    subjects.AUDIT_STREAM,
    subjects.DEADLETTER_STREAM,
)
MIGRATIONS = Path(__file__).parent / "migrations"
RETENTION_STREAMS = (subjects.AUDIT_STREAM,)
log = get_logger(__name__)


@dataclass
class Identity:
    settings: IdentitySettings
    broker: NatsBroker
    directory: PersonDirectory
    lifecycle: LifecycleStore
    app: FastAPI


@asynccontextmanager
async def bootstrap(settings: IdentitySettings) -> AsyncIterator[Identity]:
    async with (
        postgres_and_broker(settings, SERVICE, SCHEMA, ROLE, MIGRATIONS, STREAMS) as (pool, broker),
        crop_links(settings) as links,
    ):
        directory, lifecycle = PersonDirectory(pool), LifecycleStore(pool)
        publish = event_publisher(broker, SERVICE)
        consumers = register_consumers(broker, settings, directory, lifecycle, publish)
        app = create_app(
            SERVICE,
            {"nats": nats_ready(broker), "postgres": directory.ping},
            settings,
            (router, staff_router, registry_router),
        )
        app.state.directory, app.state.lifecycle, app.state.crop_links = directory, lifecycle, links
        app.state.staff_gallery = await StaffGalleryStore.open(broker.connection, settings.nats_stream_replicas)
        app.state.registry = RegistryStore(pool)
        app.state.devices, app.state.nats_authority = DeviceStore(pool), nats_authority(settings)
        app.state.registry_bucket = await RegistryBucket.open(broker.connection, settings.nats_stream_replicas)
        app.state.publish, app.state.settings = publish, settings
        stop_at_shutdown(app, consumers)
        resumer = asyncio.create_task(resume_forever(lifecycle, publish, settings.operation_resume_seconds))
        try:
            async with running_consumers(broker.connection, consumers):
                yield Identity(settings, broker, directory, lifecycle, app)
        finally:
            resumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resumer


def nats_authority(settings: IdentitySettings) -> NatsAuthority | None:
    """The keys that mint and revoke device users, or None when none is configured (the device routes then
    answer 503 naming the settings; the settings refuse half of them)."""
    if settings.nats_account_signing_seed is None or settings.nats_operator_signing_seed is None:
        return None
    return NatsAuthority(
        public_url=str(settings.nats_public_url),
        account=str(settings.nats_account),
        account_signing_seed=settings.nats_account_signing_seed.get_secret_value(),
        operator_signing_seed=settings.nats_operator_signing_seed.get_secret_value(),
        system_credentials=Path(str(settings.nats_system_credentials)),
    )


def crop_links(settings: IdentitySettings) -> CropLinks:
    return CropLinks(
        settings.s3_public_endpoint_url or settings.s3_endpoint_url,
        settings.s3_bucket,
        settings.s3_region,
        settings.s3_access_key,
        settings.s3_secret_key,
        settings.crop_link_seconds,
    )


async def resume_forever(lifecycle: LifecycleStore, publish: EventPublisher, every_seconds: float) -> None:
    """Publish again, every `every_seconds`, the events of operations open longer than that (see
    `handlers.resume_open_operations`); a failure is logged and retried at the next round."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await handlers.resume_open_operations(lifecycle, publish, every_seconds)
        except Exception as error:  # the loop must outlive a Postgres or NATS hiccup; logged, retried next round
            log.warning("operations_resume_failed", error=repr(error))


@dataclass
class IdentityRetention:
    """What identity's retention job needs, and nothing else: no consumers, resumer or HTTP server."""

    settings: IdentitySettings
    broker: NatsBroker
    directory: PersonDirectory
    publish: EventPublisher


@asynccontextmanager
async def bootstrap_retention(settings: IdentitySettings) -> AsyncIterator[IdentityRetention]:
    """Postgres (migrated, as the service role) and NATS (policies, the run lease, audit)."""
    timeout = settings.startup_timeout_seconds
    pool = await connect_postgres(settings.postgres_dsn, SCHEMA, ROLE, MIGRATIONS, timeout, max_size=2)
    try:
        broker = await connect_broker(settings, SERVICE, RETENTION_STREAMS)
        try:
            yield IdentityRetention(settings, broker, PersonDirectory(pool), event_publisher(broker, SERVICE))
        finally:
            await broker.stop()
    finally:
        await pool.close()
