"""The matcher, built through its own bootstrap on the session's NATS and a Milvus Lite file per module."""

from collections.abc import AsyncIterator

import pytest

from devstack.stack import SigningKeys
from services.matcher.bootstrap import Matcher, bootstrap
from services.matcher.config import MatcherSettings


@pytest.fixture(scope="module")
async def matcher(
    nats_url: str, nats_users, tmp_path_factory: pytest.TempPathFactory, keys: SigningKeys
) -> AsyncIterator[Matcher]:
    settings = MatcherSettings(
        nats_url=nats_url,
        nats_credentials=nats_users["matcher"],
        milvus_uri=str(tmp_path_factory.mktemp("milvus") / "faces.db"),
        environment="test",
        jwt_public_key=keys.public_pem,
    )
    async with bootstrap(settings) as service:
        await service.broker.start()
        yield service
