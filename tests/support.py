"""Helpers the tests share (fixtures live in conftest.py)."""

import asyncio
import os
import uuid
from typing import Any

import nats
import nats.aio.msg
from nats.aio.client import Client as NatsClient

CREDENTIALS_ENV = "REVISIT_NATS_CREDENTIALS"
"""Set by the session's `nats_url` fixture to the `admin` user's `.creds`: what settings and subprocesses use
when given no other user."""


async def connect_admin(url: str, **options: Any) -> NatsClient:
    """A connection to the test server as `admin` (everything in the application account)."""
    return await nats.connect(url, user_credentials=os.environ[CREDENTIALS_ENV], **options)


async def collect_messages(
    connection: NatsClient, subject: str, count: int, timeout: float = 20
) -> list[nats.aio.msg.Msg]:
    """Read `count` messages on `subject` from its stream (an ephemeral consumer from the start)."""
    js = connection.jetstream()
    subscription = await js.pull_subscribe(subject, durable=None)
    received: list[nats.aio.msg.Msg] = []
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while len(received) < count and asyncio.get_running_loop().time() < deadline:
            try:
                batch = await subscription.fetch(count - len(received), timeout=1)
            except TimeoutError:
                continue
            for message in batch:
                await message.ack()
            received.extend(batch)
    finally:
        await subscription.unsubscribe()
    return received


def new_tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"
