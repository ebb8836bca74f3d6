"""`python -m edge run` as an operator runs it: exit codes and one clear line when it cannot start."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from edge.models import MODEL_PACK_HINT

LONG_FOLDER_COPIES = 300
"""Each demo photo linked this many times: thousands of frames, more than a minute of detection."""
REPO = Path(__file__).resolve().parents[3]


def run_edge(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a clean environment plus `settings` as REVISIT_EDGE_<NAME> variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REVISIT_EDGE_", "REVISIT_NATS"))}
    env["PYTHONPATH"] = str(REPO)
    env.update({f"REVISIT_EDGE_{name.upper()}": value for name, value in settings.items()})
    command = [sys.executable, "-m", "edge", "run", "--tenant", "t1", "--site", "s1", "--camera", "c1", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_missing_model_pack_exits_2_and_says_where_to_get_one(faces_dir, tmp_path):
    result = run_edge("--source", str(faces_dir / "biden"), "--model-dir", str(tmp_path), "--nats-url", "nats://x:1")
    assert result.returncode == 2
    assert MODEL_PACK_HINT in result.stderr
    assert result.stderr.count("\n") == 1


def test_unreachable_nats_exits_2_with_one_line(shared, tmp_path):
    result = run_edge(
        "--source", str(shared / "faces" / "biden"),
        "--model-dir", str(shared / "models"),
        "--nats-url", f"nats://127.0.0.1:{free_port()}",
        "--outbox", str(tmp_path / "outbox.db"),
        "--metrics-port", "0",
        startup_timeout_seconds="1",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: NATS at nats://127.0.0.1:")
    assert "unreachable after 1s" in result.stderr and result.stderr.count("\n") == 1


def test_a_video_runs_to_the_end_and_exits_0(shared, nats_url, mint_device, tmp_path):
    result = run_edge(
        "--source", str(shared / "faces" / "misc" / "short_hamilton_clip.mp4"),
        "--model-dir", str(shared / "models"),
        "--nats-url", nats_url,
        "--nats-credentials", str(mint_device("t1", "s1", ("c1",))),
        "--clock-start", "2026-02-01T10:00:00+01:00",
        "--fps", "5",
        "--outbox", str(tmp_path / "outbox.db"),
        "--metrics-port", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    counters = dict(item.split("=") for item in summary.split("] ")[1].split())
    assert counters["frames"] == "46" and counters["outbox"] == "0"
    assert 0 < int(counters["events"]) == int(counters["published"]) < int(counters["faces"]) / 4


def test_ctrl_c_on_a_file_source_exits_130_and_says_how_far_it_got(shared, nats_url, mint_device, tmp_path):
    """Before, an interrupted folder exited 0 like a full run, and a restart republished everything.

    The folder is long (the demo photos linked many times over), so the first progress line, printed after 2 s,
    always comes while frames are still flowing: a short clip could end before it on an idle machine."""
    folder = tmp_path / "folder"
    folder.mkdir()
    photos = sorted((shared / "faces" / "misc").glob("*.jpg"))
    for copy in range(LONG_FOLDER_COPIES):
        for photo in photos:
            (folder / f"{copy:04d}_{photo.name}").symlink_to(photo)
    images = LONG_FOLDER_COPIES * len(photos)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REVISIT_EDGE_", "REVISIT_NATS"))}
    env["PYTHONPATH"] = str(REPO)
    command = [
        sys.executable, "-m", "edge", "run", "--tenant", "t1", "--site", "s1", "--camera", "c1",
        "--source", str(folder),
        "--model-dir", str(shared / "models"),
        "--nats-url", nats_url,
        "--nats-credentials", str(mint_device("t1", "s1", ("c1",))),
        "--outbox", str(tmp_path / "outbox.db"),
        "--metrics-port", "0",
    ]  # fmt: skip
    edge = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    assert edge.stderr is not None
    for line in edge.stderr:  # the first progress line: models loaded, frames flowing
        if line.startswith("[edge running]"):
            break
    edge.send_signal(signal.SIGINT)
    rest = edge.stderr.read()
    assert edge.wait(60) == 130, rest
    interrupted = [line for line in rest.splitlines() if line.startswith("interrupted: camera c1 stopped after ")]
    assert len(interrupted) == 1, rest
    frames = int(interrupted[0].split(" stopped after ")[1].split()[0])
    assert 0 < frames < images  # it got part of the way
    assert f"(last: {folder}/" in interrupted[0]  # the last image it read
