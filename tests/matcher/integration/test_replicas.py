"""Three matcher replicas as real processes (`python -m services.matcher`) on the test NATS, sharing one Milvus
Lite store, and a kill -9 of one of them while faces of several tenants flow.

Milvus Lite is embedded per process (a local file is opened by one process), so the replicas share it the way
production replicas share a Milvus server: one `milvus-lite server` process (Milvus Lite's own gRPC server, the
same engine the embedded default runs) that every replica reaches at `http://127.0.0.1:<port>` through the same
pymilvus code. The tenant leases (renewed, fenced, TTL 2 s here) and the vector log are the real ones on NATS."""

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from nats.aio.client import Client as NatsClient

from devstack.infra import ManagedProcess, free_port, spawn, wait_for_port
from devstack.stack import Endpoints, SigningKeys, service_environment
from schemas import FaceIngested
from tests.support import new_tenant
from tests.support_matcher import ingested, matched_by_source, person_vectors, publish

REPLICAS = 3
TENANTS = 6
PERSONS_PER_TENANT = 4
BURST = 5
LEASE_TTL_SECONDS = 2.0
HANDOVER_BOUND_SECONDS = 25.0
"""Faces published after the kill are all matched within this: below the 30 s ack wait that would bound a
replica waiting out a dead one's unrenewed 30 s lease, as before."""


@pytest.fixture
def milvus_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = spawn(
        "milvus-lite",
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "milvus"),
         "--host", "127.0.0.1", "--port", str(port)],
        tmp_path / "logs",
    )  # fmt: skip
    try:
        wait_for_port(server, port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def replicas(
    milvus_server: str, nats_url: str, nats_users: dict[str, Path], keys: SigningKeys, tmp_path: Path
) -> Iterator[list[ManagedProcess]]:
    endpoints = Endpoints(nats_url, "", "", milvus_server, nats_users=nats_users)
    started: list[ManagedProcess] = []
    try:
        for index in range(REPLICAS):
            port = free_port()
            env = service_environment("matcher", endpoints, keys, port, environment="test")
            env |= {"REVISIT_LEASE_TTL_SECONDS": str(LEASE_TTL_SECONDS), "PYTHONUNBUFFERED": "1"}
            replica = spawn(f"matcher-{index}", [sys.executable, "-m", "services.matcher"], tmp_path / "logs", env)
            started.append(replica)
            wait_until_ready(replica, port)
        yield started
    finally:
        for replica in started:
            replica.stop()


def wait_until_ready(replica: ManagedProcess, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            pytest.fail(f"{replica.name} exited: {replica.log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{replica.name} not ready after {timeout:.0f}s: {replica.log_path.read_text()[-2000:]}")


def bursts(rng: np.random.Generator, tenants: list[str]) -> dict[str, list[list[FaceIngested]]]:
    """Per tenant, `PERSONS_PER_TENANT` new persons, each seen `BURST` times."""
    return {
        tenant: [
            [ingested(tenant, v) for v in person_vectors(rng, BURST, noise=0.2)] for _ in range(PERSONS_PER_TENANT)
        ]
        for tenant in tenants
    }


def interleaved(by_tenant: dict[str, list[list[FaceIngested]]]) -> list[FaceIngested]:
    """Faces of every tenant and person mixed, so every replica gets part of every burst."""
    faces = [face for groups in by_tenant.values() for group in groups for face in group]
    order = np.random.default_rng(5).permutation(len(faces))
    return [faces[i] for i in order]


async def test_three_replicas_and_a_kill_9_give_one_person_per_burst_and_hand_tenants_over(
    replicas: list[ManagedProcess], nats_connection: NatsClient
) -> None:
    rng = np.random.default_rng(21)
    tenants = [new_tenant() for _ in range(TENANTS)]
    before = bursts(rng, tenants)
    await publish(nats_connection, interleaved(before))
    # kill one replica while the first faces are being matched (it may hold tenant leases and unacked faces)
    await matched_by_source(nats_connection, tenants[0], 2, timeout=120)
    victim = replicas[1]
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(10)
    killed_at = time.monotonic()

    after = bursts(rng, tenants)
    await publish(nats_connection, interleaved(after))
    handover_seconds = await seconds_until_matched(nats_connection, after, killed_at)
    print(f"faces published after the kill -9 all matched {handover_seconds:.1f} s after it")
    assert handover_seconds < HANDOVER_BOUND_SECONDS

    person_of: dict[uuid.UUID, uuid.UUID] = {}  # first face of each burst -> its person
    for tenant in tenants:
        groups = before[tenant] + after[tenant]
        expected = sum(len(group) for group in groups)
        matches = await matched_by_source(nats_connection, tenant, expected, timeout=120)  # the dead one's too
        assert len(matches) == expected, f"{tenant}: {len(matches)} of {expected} faces matched"
        persons = [{matches[face.event_id].person_id for face in group} for group in groups]
        assert all(len(person) == 1 for person in persons), f"{tenant}: a burst was split: {persons}"
        assert len({next(iter(person)) for person in persons}) == len(persons), f"{tenant}: two bursts merged"
        person_of |= {group[0].event_id: next(iter(person)) for group, person in zip(groups, persons, strict=True)}

    # each person seen once more, on whichever replica: every copy caught up with every other replica's writes
    again = {
        tenant: [
            (group[0].event_id, ingested(tenant, np.asarray(group[0].embedding)))
            for group in before[tenant] + after[tenant]
        ]
        for tenant in tenants
    }
    await publish(nats_connection, [face for faces in again.values() for _, face in faces])
    for tenant, faces in again.items():
        total = sum(len(group) for group in before[tenant] + after[tenant]) + len(faces)
        matches = await matched_by_source(nats_connection, tenant, total, timeout=60)
        for first, face in faces:
            assert not matches[face.event_id].is_new_person
            assert matches[face.event_id].person_id == person_of[first]
    survivors = [replica for replica in replicas if replica is not victim]
    assert all(replica.process.poll() is None for replica in survivors)
    for replica in survivors:  # each took part, and normal operation logs no traceback
        log = replica.log_path.read_text()
        assert "faces_matched" in log, f"{replica.name} matched nothing"
        assert "Traceback" not in log, log[max(0, log.find("Traceback") - 1000) :][:6000]
        assert "decisions_batched_get_unavailable" not in log  # the matcher's NATS user may make batched gets


async def seconds_until_matched(
    connection: NatsClient, by_tenant: dict[str, list[list[FaceIngested]]], since: float
) -> float:
    """Time from `since` until every face of `by_tenant` has its FaceMatched (or the bound is passed)."""
    waiting = {tenant: {face.event_id for group in groups for face in group} for tenant, groups in by_tenant.items()}
    while waiting and time.monotonic() - since < HANDOVER_BOUND_SECONDS + 5:
        for tenant in list(waiting):
            total = sum(len(group) for group in by_tenant[tenant])
            seen: set[uuid.UUID] = set(await matched_by_source(connection, tenant, 10 * total, timeout=1))
            waiting[tenant] -= seen
            if not waiting[tenant]:
                del waiting[tenant]
        await asyncio.sleep(0.2)
    return time.monotonic() - since
