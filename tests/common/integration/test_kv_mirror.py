"""A KV mirror stays current across NATS restarts: a long one on the same data, and one without its data.

On the same data nats-py's own heartbeat check re-creates the watch's ordered consumer (the mirror's
supervisor is the guard should it not); without its data the bucket's revisions start again from 1 and
the old watch, resuming after its last revision, would never see them (this test failed before the
supervisor: services/common/kv_mirror.py).
"""

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from devstack.infra import free_port, start_nats
from devstack.nats_auth import NatsTrust
from services.common.kv_mirror import KvMirror, state_bucket
from tests.support import connect_admin

OUTAGE_SECONDS = 25
"""Longer than two missed heartbeats of the watch (2 x 5 s), so nats-py's own re-creation runs and fails."""


async def seen(values: dict[str, bytes | None], key: str, within: float) -> bool:
    for _ in range(int(within * 4)):
        if key in values:
            return True
        await asyncio.sleep(0.25)
    return key in values


def restarts(bucket: str) -> float | None:
    return REGISTRY.get_sample_value("revisit_kv_mirror_restarts_total", {"bucket": bucket})


@pytest.mark.asyncio
async def test_mirror_sees_a_key_put_after_a_long_nats_restart(
    nats_trust: NatsTrust, nats_admin_credentials: Path, tmp_path: Path
) -> None:
    port = free_port()
    data, logs = tmp_path / "nats", tmp_path / "logs"
    url, server = start_nats(data, logs, port, nats_trust)
    connection = await connect_admin(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
    values: dict[str, bytes | None] = {}
    mirror = KvMirror(await state_bucket(connection, "mirror_restart"), values.__setitem__)
    try:
        await (await state_bucket(connection, "mirror_restart")).put("before", b"1")
        await mirror.start()
        assert values == {"before": b"1"}
        server.stop()
        await asyncio.sleep(OUTAGE_SECONDS)
        url, server = start_nats(data, logs, port, nats_trust)
        writer = await connect_admin(url)
        await (await state_bucket(writer, "mirror_restart")).put("after", b"2")
        await writer.close()
        assert await seen(values, "after", within=60), "the mirror went stale after NATS came back"
    finally:
        try:
            await mirror.stop()
            await connection.close()
        finally:
            server.stop()  # even when closing fails: no nats-server outlives the test


@pytest.mark.asyncio
async def test_mirror_follows_a_bucket_recreated_by_a_nats_restart_without_its_data(
    nats_trust: NatsTrust, nats_admin_credentials: Path, tmp_path: Path
) -> None:
    """NATS back on an empty volume (a pod without persistent storage): the bucket is created again and its
    revisions start from 1. The old watch would resume after its last revision and never see them; the
    re-read mirror drops the keys that vanished and holds the new ones."""
    port, logs = free_port(), tmp_path / "logs"
    url, server = start_nats(tmp_path / "first", logs, port, nats_trust)
    connection = await connect_admin(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
    values: dict[str, bytes | None] = {}
    bucket = await state_bucket(connection, "mirror_recreated")
    for index in range(5):
        await bucket.put(f"old{index}", b"1")
    mirror = KvMirror(bucket, values.__setitem__)
    try:
        await mirror.start()
        assert restarts("mirror_recreated") == 0  # exported from the start, so an alert sees the first step
        server.stop()
        url, server = start_nats(tmp_path / "second", logs, port, nats_trust)
        writer = await connect_admin(url)
        await (await state_bucket(writer, "mirror_recreated")).put("new", b"2")
        await writer.close()
        assert await seen(values, "new", within=60), "the mirror never saw the re-created bucket's first key"
        assert {key for key, value in values.items() if value is not None} == {"new"}
        assert restarts("mirror_recreated") == 1
    finally:
        try:
            await mirror.stop()
            await connection.close()
        finally:
            server.stop()  # even when closing fails: no nats-server outlives the test
