"""Every service refuses to start, with one clear message and exit status 2, when a dependency is unreachable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.infra import free_port
from devstack.stack import DEFAULT_PORTS, Endpoints, SigningKeys, service_environment


@pytest.mark.parametrize("service", ["ingest", "matcher", "identity", "reporting", "audit"])
def test_service_refuses_to_start_without_its_dependencies(service: str, keys: SigningKeys, tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    endpoints = Endpoints(
        nats_url=f"nats://127.0.0.1:{dead}",
        postgres_dsn=f"postgresql://postgres@127.0.0.1:{dead}/revisit",
        s3_endpoint=f"http://127.0.0.1:{dead}",
        milvus_uri=str(tmp_path / "milvus.db"),
    )
    env = service_environment(service, endpoints, keys, DEFAULT_PORTS[service], environment="test")
    env["REVISIT_STARTUP_TIMEOUT_SECONDS"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "unreachable" in message
    assert "REVISIT_" in message  # says which setting to check


def test_missing_setting_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    result = subprocess.run(
        [sys.executable, "-m", "services.reporting"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "nats_url" in result.stderr and "postgres_dsn" in result.stderr
