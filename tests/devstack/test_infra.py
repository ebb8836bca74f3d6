"""Starting the embedded stack: a taken port stops the start with one clear line, and a process that never comes
up is stopped, not left behind for the next start to trip over."""

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.infra import InfraError, free_port, spawn, start_nats, start_s3, wait_for_port
from devstack.nats_auth import load_or_create_trust
from devstack.stack import SERVICE_NAMES, Endpoints, SigningKeys, start_services


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        yield port


def test_a_taken_port_stops_nats_and_s3_before_they_start(tmp_path: Path, taken_port: int) -> None:
    trust = load_or_create_trust(tmp_path / "keys")
    with pytest.raises(InfraError, match=f"port {taken_port} for nats-server is taken"):
        start_nats(tmp_path / "nats", tmp_path / "logs", taken_port, trust)
    with pytest.raises(InfraError, match=f"port {taken_port} for the S3 server is taken"):
        start_s3(tmp_path / "s3", tmp_path / "logs", taken_port)
    assert not (tmp_path / "logs").exists()  # nothing was spawned


def test_a_taken_service_port_stops_the_start_before_any_service_runs(tmp_path: Path, taken_port: int) -> None:
    ports = {name: free_port() for name in SERVICE_NAMES} | {"reporting": taken_port}
    endpoints = Endpoints("nats://127.0.0.1:1", "postgresql://unused", "http://127.0.0.1:1", str(tmp_path / "m.db"))
    with pytest.raises(InfraError, match=f"port {taken_port} for service reporting is taken"):
        start_services(endpoints, SigningKeys("", "", ""), ports, tmp_path / "logs")
    assert not (tmp_path / "logs").exists()


def test_a_process_that_never_listens_is_stopped(tmp_path: Path) -> None:
    silent = spawn("silent", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path)
    with pytest.raises(InfraError, match="did not listen"):
        wait_for_port(silent, free_port(), timeout=1)
    assert silent.process.poll() is not None
