"""Builds identity's adapters from settings; the only place they are constructed."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from faststream.nats import NatsBroker

from schemas import subjects
from services.common.bus import event_publisher
from services.common.connections import postgres_and_broker
from services.common.http import create_app, nats_ready
from services.identity.adapters.postgres import ROLE, SCHEMA, PersonDirectory
from services.identity.adapters.staff_gallery import StaffGalleryStore
from services.identity.api import router
from services.identity.config import IdentitySettings
from services.identity.consumers import register_consumers
from services.identity.staff import router as staff_router

SERVICE = "identity"
STREAMS = (subjects.FACES_STREAM, subjects.IDENTITY_STREAM, subjects.AUDIT_STREAM, subjects.DEADLETTER_STREAM)
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Identity:
    settings: IdentitySettings
    broker: NatsBroker
    directory: PersonDirectory
    app: FastAPI


@asynccontextmanager
async def bootstrap(settings: IdentitySettings) -> AsyncIterator[Identity]:
    async with postgres_and_broker(settings, SERVICE, SCHEMA, ROLE, MIGRATIONS, STREAMS) as (pool, broker):
        directory = PersonDirectory(pool)
        publish = event_publisher(broker, SERVICE)
        register_consumers(broker, settings, directory, publish)
        app = create_app(
            SERVICE, {"nats": nats_ready(broker), "postgres": directory.ping}, settings, (router, staff_router)
        )
        app.state.directory = directory
        app.state.staff_gallery = await StaffGalleryStore.open(broker.connection)
        app.state.publish = publish
        yield Identity(settings, broker, directory, app)
