"""Reporting built through its own bootstrap on the session's real NATS and Postgres, one per test module."""

from collections.abc import AsyncIterator

import pytest

from devstack.stack import SigningKeys
from services.reporting.bootstrap import Reporting, bootstrap
from services.reporting.config import ReportingSettings


@pytest.fixture(scope="module")
async def reporting(nats_url: str, nats_users, postgres_dsn: str, keys: SigningKeys) -> AsyncIterator[Reporting]:
    settings = ReportingSettings(
        nats_url=nats_url,
        nats_credentials=nats_users["reporting"],
        postgres_dsn=postgres_dsn,
        jwt_public_key=keys.public_pem,
        environment="test",
    )
    async with bootstrap(settings) as service:
        await service.broker.start()
        yield service
