"""Identity built through its own bootstrap against the session's real NATS (as the identity user), Postgres
and S3, with the NATS keys its device registry mints and revokes devices with."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.nats_auth import SYSTEM_USER, NatsTrust
from services.identity.bootstrap import Identity, bootstrap
from services.identity.config import IdentitySettings


@pytest.fixture(scope="module")
def identity_settings(  # type: ignore[no-untyped-def]
    nats_url: str,
    nats_users: dict[str, Path],
    nats_trust: NatsTrust,
    postgres_dsn: str,
    keys,
    s3_endpoint,
    s3_credentials,
) -> IdentitySettings:
    return IdentitySettings(
        nats_url=nats_url,
        nats_credentials=nats_users["identity"],
        postgres_dsn=postgres_dsn,
        jwt_public_key=keys.public_pem,
        environment="test",
        s3_endpoint_url=s3_endpoint,
        s3_access_key=s3_credentials[0],
        s3_secret_key=s3_credentials[1],
        nats_public_url=nats_url,
        nats_account=nats_trust.account,
        nats_account_signing_seed=nats_trust.account_signing_seed,
        nats_operator_signing_seed=nats_trust.operator_signing_seed,
        nats_system_credentials=nats_users[SYSTEM_USER],
    )


@pytest.fixture(scope="module")
async def identity(identity_settings: IdentitySettings) -> AsyncIterator[Identity]:
    async with bootstrap(identity_settings) as service:
        await service.broker.start()
        yield service
