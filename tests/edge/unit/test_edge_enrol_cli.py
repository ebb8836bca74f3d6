"""`python -m edge enrol-staff` fails fast, with one line and exit 2, when it cannot do what was asked."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def enrol_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run enrol-staff in a clean environment; no model is needed, since every check here comes before them.

    A dependency that is down must end the command, not retry forever: the start-up wait is cut to 2 s and a
    run that has not ended after 60 s fails the test (a bound, not a speed target: those are benchmarks)."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("REVISIT_EDGE_", "REVISIT_NATS"))}
    clean |= {"PYTHONPATH": str(REPO), "REVISIT_EDGE_STARTUP_TIMEOUT_SECONDS": "2", **env}
    command = [sys.executable, "-m", "edge", "enrol-staff", "--photo", "jane.jpg", "--model-dir", "/nonexistent", *args]
    return subprocess.run(command, cwd=REPO, env=clean, capture_output=True, text=True, timeout=60)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str], starts: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(starts), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("staff_id", ["Jane Doe", "jane.doe", "-jane", ""])
def test_a_malformed_staff_id_is_refused_before_anything_is_dialled(staff_id: str) -> None:
    result = enrol_cli("--tenant", "acme", f"--staff-id={staff_id}", "--nats-url", "nats://127.0.0.1:1")
    assert_one_line_exit_2(result, f"error: staff id {staff_id!r} is not a token")


def test_unreachable_nats_is_one_line_not_endless_retries() -> None:
    url = f"nats://127.0.0.1:{closed_port()}"
    result = enrol_cli("--tenant", "acme", "--staff-id", "jane", "--nats-url", url)
    assert_one_line_exit_2(result, f"error: NATS at {url} unreachable")


def test_unreachable_identity_is_one_line_not_endless_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = enrol_cli(
        "--tenant", "acme", "--staff-id", "jane", "--identity-url", url, REVISIT_IDENTITY_TOKEN="a.jwt.token"
    )
    assert_one_line_exit_2(result, f"error: identity at {url} unreachable")


def test_identity_without_a_token_is_refused() -> None:
    result = enrol_cli("--tenant", "acme", "--staff-id", "jane", "--identity-url", "http://127.0.0.1:1")
    assert_one_line_exit_2(result, "error: --identity-url needs an admin token")
