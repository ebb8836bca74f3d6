"""Acceptance: NATS stops while the edge detects, the edge is killed -9, both restart: every event the
edge accepted (wrote to its outbox) reaches FACES_DETECTED exactly once."""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import pytest

from devstack.infra import free_port, start_nats
from edge.sources import image_files
from schemas.faces import FaceDetected
from schemas.subjects import FACES_DETECTED_STREAM
from services.common.bus import declare_streams, open_staff_gallery
from tests.support import connect_admin

REPO = Path(__file__).resolve().parents[3]
REPEATS = 6


def edge_process(
    source: Path, tenant: str, url: str, credentials: Path, outbox: Path, models: Path
) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REVISIT_EDGE_", "REVISIT_NATS"))}
    env |= {"PYTHONPATH": str(REPO), "REVISIT_EDGE_STARTUP_TIMEOUT_SECONDS": "10"}
    command = [
        sys.executable, "-m", "edge", "run", "--source", str(source), "--tenant", tenant, "--site", "s1",
        "--camera", "door", "--model-dir", str(models), "--nats-url", url, "--nats-credentials", str(credentials),
        "--outbox", str(outbox),
        "--metrics-port", "0", "--drain-timeout", "60",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outbox_rows(path: Path) -> list[tuple[str, str]]:
    """(event_id, track_id) of every event waiting in the outbox (read beside the running edge: WAL)."""
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=5) as db:
        try:
            payloads = [row[0] for row in db.execute("SELECT payload FROM outbox ORDER BY seq")]
        except sqlite3.OperationalError:  # the edge has not created the table yet
            return []
    events = [FaceDetected.model_validate_json(payload) for payload in payloads]
    return [(str(event.event_id), event.track_id) for event in events]


async def stream_messages(url: str) -> int:
    """Messages in FACES_DETECTED of this test's own server."""
    connection = await connect_admin(url)
    try:
        return (await connection.jetstream().stream_info("FACES_DETECTED")).state.messages
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await connection.close()


async def declare_detections(url: str) -> None:
    """The services' part (the edge declares nothing): the stream it publishes to, the gallery it watches."""
    connection = await connect_admin(url)
    await declare_streams(connection, [FACES_DETECTED_STREAM])
    await open_staff_gallery(connection)
    await connection.close()


async def read_all(url: str, tenant: str) -> list[FaceDetected]:
    connection = await connect_admin(url)
    try:
        subscription = await connection.jetstream().subscribe(f"faces.detected.{tenant}.>", ordered_consumer=True)
        events = []
        while True:
            try:
                events.append(FaceDetected.model_validate_json((await subscription.next_msg(timeout=1.5)).data))
            except nats.errors.TimeoutError:
                return events
    finally:
        await connection.close()


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def photo_folder(target: Path, photos: list[Path], repeats: int) -> Path:
    target.mkdir()
    for round_ in range(repeats):
        for index, photo in enumerate(photos):
            (target / f"{round_:02d}-{index:02d}{photo.suffix}").symlink_to(photo)
    return target


@pytest.mark.asyncio
async def test_nats_down_and_edge_killed_loses_and_duplicates_nothing(
    shared, nats_trust, nats_admin_credentials, mint_device, tmp_path
):
    labelled = [path for path in image_files(shared / "faces") if path.parent.name not in ("misc", "tom_hanks")]
    first_source = photo_folder(tmp_path / "first", labelled, REPEATS)  # one face per photo, no tracking
    second_source = photo_folder(tmp_path / "second", labelled[:5], 1)
    tenant, outbox, models = f"acc-{uuid.uuid4().hex[:8]}", tmp_path / "outbox.db", shared / "models"
    port, data, logs = free_port(), tmp_path / "nats", tmp_path / "logs"
    device = mint_device(tenant, "s1", ("door",))

    url, server = start_nats(data, logs, port, nats_trust)
    await declare_detections(url)
    edge = edge_process(first_source, tenant, url, device, outbox, models)
    try:

        async def published() -> bool:
            return await stream_messages(url) >= 3

        async def buffered() -> bool:
            return len(outbox_rows(outbox)) >= 10

        await wait_for(published, 60, "the first PubAcks")
        server.stop()  # NATS goes away while the edge is still detecting
        await wait_for(buffered, 60, "events waiting in the outbox")
        assert edge.poll() is None, "the edge must still run with NATS down"
        edge.send_signal(signal.SIGKILL)
        edge.wait(10)
    finally:
        if edge.poll() is None:
            edge.kill()
        server.stop()
    waiting = outbox_rows(outbox)
    assert len(waiting) >= 10

    url, server = start_nats(data, logs, port, nats_trust)  # same data dir and port: stream and dedup window survive
    try:
        second = edge_process(second_source, tenant, url, device, outbox, models)
        _, stderr = second.communicate(timeout=90)
        assert second.returncode == 0, stderr
        events = await read_all(url, tenant)
    finally:
        server.stop()

    ids = Counter(str(event.event_id) for event in events)
    assert [event_id for event_id, count in ids.items() if count > 1] == []
    assert {event_id for event_id, _ in waiting} <= set(ids)
    first_run_prefix = waiting[0][1].rsplit("-", 1)[0]
    first_run = sorted(int(e.track_id.rsplit("-", 1)[1]) for e in events if e.track_id.startswith(first_run_prefix))
    produced = max(first_run + [int(track.rsplit("-", 1)[1]) for _, track in waiting])
    assert first_run == list(range(1, produced + 1))  # every accepted event of the killed edge, once, no gap
    print(f"published before NATS stopped {len(first_run) - len(waiting)}, in the outbox at kill {len(waiting)}")
    assert len(events) == produced + 5  # and the five of the restarted edge
    assert outbox_rows(outbox) == []
