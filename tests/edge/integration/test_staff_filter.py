"""A staff member enrolled while the edge runs stops being published; removed, they are published again."""

import asyncio
import os
import queue
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import cv2
import nats
import numpy as np
import pytest
from prometheus_client import REGISTRY

from edge.bootstrap import bootstrap
from edge.config import Camera
from edge.sources import Frame
from schemas.faces import FaceDetected
from schemas.subjects import staff_gallery_key
from services.common.bus import open_staff_gallery
from tests.support import connect_admin

REPO = Path(__file__).resolve().parents[3]


def paced(frames: "queue.Queue[Frame | None]") -> Iterator[Frame]:
    """A camera the test drives: each frame when the test puts it, the end at None (or 60 s of silence)."""
    while (frame := frames.get(timeout=60)) is not None:
        yield frame


async def wait_until(condition, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def enrol_cli(nats_url: str, credentials: Path, tenant: str, models: Path, photos: list[Path]) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REVISIT_EDGE_", "REVISIT_NATS"))}
    photo_flags = [flag for photo in photos for flag in ("--photo", str(photo))]
    result = subprocess.run(
        [sys.executable, "-m", "edge", "enrol-staff", "--tenant", tenant, "--staff-id", "obama",
         *photo_flags, "--model-dir", str(models), "--nats-url", nats_url, "--nats-credentials", str(credentials)],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"enrolled {tenant}.obama: 2 vectors of mobilefacenet_arcface_128@" in result.stdout


@pytest.mark.asyncio
async def test_staff_enrolled_while_running_is_filtered_live(
    nats_url, nats_admin_credentials, mint_device, edge_settings, faces_dir, clock_start, tmp_path
):
    """The edge runs as a device user: its watch of its tenant's keys is all the gallery it may read."""
    tenant, camera_id = f"staff-{uuid.uuid4().hex[:8]}", f"door-{uuid.uuid4().hex[:6]}"
    device = mint_device(tenant, "s1", (camera_id,))
    settings = edge_settings.model_copy(
        update={"nats_url": nats_url, "nats_credentials": device, "outbox_path": tmp_path / "outbox.db"}
    )
    camera = Camera(
        tenant_id=tenant, site_id="s1", camera_id=camera_id, source=str(faces_dir / "biden"), fps=5, min_face_px=32
    )
    photos = {
        name: np.asarray(cv2.imread(str(faces_dir / name.split("_")[0] / f"{name}.jpg")), dtype=np.uint8)
        for name in ("obama_3", "obama_4", "biden_1", "biden_2")
    }
    person_of_frame: list[str] = []
    frames: queue.Queue[Frame | None] = queue.Queue()

    def show(*names: str) -> None:
        for name in names:
            index = len(person_of_frame)
            person_of_frame.append(name.split("_")[0])
            frames.put(Frame(index, clock_start + timedelta(seconds=index), photos[name], name))

    edge = await bootstrap(settings, [camera], clock_start)
    edge.runs[0].frames = paced(frames)  # the image folder's pipeline (no tracking), fed by the test
    gallery, pipeline = edge.staff_watchers[0].gallery, edge.runs[0].pipeline
    filtered_before = REGISTRY.get_sample_value("revisit_edge_staff_filtered_total", {"camera": camera_id}) or 0
    running = asyncio.create_task(edge.run())
    connection = await connect_admin(nats_url)
    try:
        show("obama_3", "biden_1", "obama_4", "biden_2")
        await wait_until(lambda: pipeline.counters.frames == 4)
        enrolment = [faces_dir / "obama" / "obama_1.jpg", faces_dir / "obama" / "obama_2.jpg"]
        enrol_cli(nats_url, nats_admin_credentials, tenant, Path(settings.model_dir), enrolment)
        await wait_until(lambda: "obama" in gallery)

        show("obama_3", "biden_1", "obama_4", "biden_2")
        await wait_until(lambda: pipeline.counters.frames == 8)
        await (await open_staff_gallery(connection)).delete(staff_gallery_key(tenant, "obama"))
        await wait_until(lambda: "obama" not in gallery)

        show("obama_3", "biden_1")
        frames.put(None)
        assert await asyncio.wait_for(running, 60) == 0
    finally:
        frames.put(None)
        await edge.close()

    subscription = await connection.jetstream().subscribe(f"faces.detected.{tenant}.>", ordered_consumer=True)
    published: list[FaceDetected] = []
    while True:
        try:
            published.append(FaceDetected.model_validate_json((await subscription.next_msg(timeout=1.0)).data))
        except nats.errors.TimeoutError:
            break
    await connection.close()

    frame_persons = [person_of_frame[round((e.captured_at - clock_start).total_seconds())] for e in published]
    by_phase = [sorted(frame_persons[:4]), sorted(frame_persons[4:6]), sorted(frame_persons[6:])]
    assert by_phase == [["biden", "biden", "obama", "obama"], ["biden", "biden"], ["biden", "obama"]]
    assert [round((e.captured_at - clock_start).total_seconds()) for e in published][4:6] == [5, 7]
    assert pipeline.counters.staff_filtered == 2
    filtered_after = REGISTRY.get_sample_value("revisit_edge_staff_filtered_total", {"camera": camera_id})
    assert filtered_after == filtered_before + 2


async def test_gallery_watch_catches_up_after_a_nats_restart(
    nats_trust, nats_admin_credentials, mint_device, tmp_path
) -> None:
    """A staff member enrolled while the edge's NATS was restarted still reaches its gallery (a device's watch:
    the ordered consumer that replaces the lost one is created under a new name, within its permissions)."""
    from devstack.infra import free_port, start_nats
    from edge.publisher import connect_options
    from edge.staff import watch_staff_gallery
    from schemas.staff import staff_entry

    port = free_port()
    url, server = start_nats(tmp_path / "nats", tmp_path / "logs", port, nats_trust)
    admin = await connect_admin(url)
    await open_staff_gallery(admin)  # identity's part: the bucket exists before edges watch it
    await admin.close()
    device = connect_options(mint_device("acme", "s1", ("door",)))
    edge_connection = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, **device)
    watcher = await watch_staff_gallery(edge_connection, "acme", 5)
    watch = asyncio.create_task(watcher.run())
    try:
        server.stop()
        await asyncio.sleep(1)
        url, server = start_nats(tmp_path / "nats", tmp_path / "logs", port, nats_trust)
        admin = await connect_admin(url)
        await (await open_staff_gallery(admin)).put(
            "acme.bob", staff_entry("acme", "bob", "model@1", [[0.1] * 128]).to_json_bytes()
        )
        await admin.close()
        for _ in range(60):
            if len(watcher.gallery):
                break
            await asyncio.sleep(0.5)
        assert len(watcher.gallery) == 1, "the watch did not resume after the restart"
    finally:
        watch.cancel()
        await watcher.stop()
        await edge_connection.close()
        server.stop()
