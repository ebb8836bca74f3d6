"""The person lifecycle through the whole system: the edge on real photos, every service as its own
process, merge, split and erasure through identity's API, and the counts read from reporting.

Five people visit on two days, an hour apart (each day one photo of each). Merge, split back, erase: the visitor
counts, visits, crop links and the audit chain must follow in every store. Then matcher, reporting and
ingest are killed with SIGKILL while a merge and an erasure are under way: both complete after restart."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devstack.infra import ManagedProcess, free_port, spawn
from devstack.stack import SERVICE_NAMES, Endpoints, SigningKeys, service_environment, start_services, wait_until_ready
from tests.support import register_camera

TENANT, SITE = "life", "store-1"
PEOPLE = ("biden", "eric_clapton", "john_lennon", "kit_harington", "obama")
DAY_ONE = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=4)
"""Recent days (the test spans three): ingest refuses sightings older than the edges' outbox keeps events (7 days)."""
REPORTED = {"from": f"{DAY_ONE:%Y-%m-%d}", "to": f"{DAY_ONE + timedelta(days=3):%Y-%m-%d}"}


@dataclass
class Stack:
    endpoints: Endpoints
    keys: SigningKeys
    ports: dict[str, int]
    processes: dict[str, ManagedProcess]
    log_dir: Path
    device: Path
    """The edge's NATS user: its one camera, its tenant's staff gallery."""

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown code runs, unacknowledged messages stay on the streams."""
        process = self.processes[name].process
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def start(self, name: str) -> None:
        env = {
            **service_environment(name, self.endpoints, self.keys, self.ports[name], "test"),
            "PYTHONUNBUFFERED": "1",
        }
        self.processes[name] = spawn(name, [sys.executable, "-m", f"services.{name}"], self.log_dir, env)
        wait_until_ready([self.processes[name]], self.ports)


@pytest.fixture(scope="module")
def stack(
    nats_url: str,
    nats_users: dict[str, Path],
    mint_device: Callable[..., Path],
    postgres_dsn: str,
    s3_endpoint: str,
    keys: SigningKeys,
    run_dir: Path,
    make_token: Callable[..., str],
) -> Iterator[Stack]:
    endpoints = Endpoints(nats_url, postgres_dsn, s3_endpoint, str(run_dir / "life-milvus.db"), nats_users)
    ports = {name: free_port() for name in SERVICE_NAMES}
    log_dir = run_dir / "life-logs"
    processes = start_services(endpoints, keys, ports, log_dir, environment="test")
    device = mint_device(TENANT, SITE, ("entrance",))
    running = Stack(endpoints, keys, ports, {p.name: p for p in processes}, log_dir, device)
    try:
        wait_until_ready(processes, ports)
        register_camera(running.url("identity", ""), make_token(TENANT, ["admin"]), SITE, "entrance")
        yield running
    finally:
        for process in running.processes.values():
            process.stop()


def photos_folder(shared: Path, work: Path, photo_index: int, people: tuple[str, ...]) -> Path:
    folder = work / f"photos{photo_index}-{'-'.join(people)}"
    folder.mkdir(parents=True, exist_ok=True)
    for person in people:
        photo = sorted((shared / "faces" / person).iterdir())[photo_index]
        link = folder / f"{person}{photo.suffix.lower()}"
        if not link.exists():
            link.symlink_to(photo.resolve())
    return folder


def run_edge(stack: Stack, folder: Path, clock_start: datetime, shared: Path, outbox: Path) -> None:
    command = [
        sys.executable, "-m", "edge", "run", "--source", str(folder), "--tenant", TENANT, "--site", SITE,
        "--camera", "entrance", "--model-dir", str(shared / "models"), "--nats-url", stack.endpoints.nats_url,
        "--nats-credentials", str(stack.device), "--clock-start", clock_start.isoformat(), "--frame-interval", "3600",
        "--outbox", str(outbox),
        "--metrics-port", "0",
    ]  # fmt: skip
    # an hour between photos: each person's visit of the day is its own (the visit gap is 30 minutes)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


class Api:
    def __init__(self, stack: Stack, make_token: Callable[..., str]) -> None:
        self.stack = stack
        self.admin = {"authorization": f"Bearer {make_token(TENANT, ['admin'])}"}

    def get(self, service: str, path: str, **params: str) -> httpx.Response:
        return httpx.get(self.stack.url(service, path), params=params, headers=self.admin, timeout=10)

    def send(self, method: str, path: str, body: dict | None = None) -> dict:
        response = httpx.request(method, self.stack.url("identity", path), json=body, headers=self.admin, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()

    def persons(self) -> list[dict]:
        return self.get("identity", "/v1/persons", limit="100").json()["items"]

    def totals(self) -> dict:
        return self.get("reporting", "/v1/reports/visitors", site_id=SITE, **REPORTED).json()["totals"]

    def visits_of(self, person_id: str) -> int:
        visits = self.get("reporting", "/v1/visits", site_id=SITE, limit="10000", **REPORTED).json()["items"]
        return sum(v["person_id"] == person_id for v in visits)

    def completed(self, operation_id: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            operation = self.get("identity", f"/v1/operations/{operation_id}").json()
            if operation["status"] == "completed":
                return operation
            time.sleep(0.3)
        raise AssertionError(f"operation not completed in {timeout:.0f}s: {operation}")


def eventually(check: Callable[[], object], expected: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (value := check()) != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    assert value == expected


def test_merge_split_erase_through_every_store(
    stack: Stack, shared: Path, run_dir: Path, make_token: Callable[..., str]
) -> None:
    api = Api(stack, make_token)
    outbox = run_dir / "life-outbox.db"
    for day in range(2):
        run_edge(stack, photos_folder(shared, run_dir, day, PEOPLE), DAY_ONE + timedelta(days=day), shared, outbox)
    eventually(lambda: (api.totals()["unique_visitors"], api.totals()["visits"]), (5, 10))
    eventually(lambda: len(api.persons()), 5)
    a, b, c = (p["person_id"] for p in sorted(api.persons(), key=lambda p: p["first_seen_at"])[:3])

    merge = api.send("POST", f"/v1/persons/{a}/merge", {"person_ids": [b]})
    api.completed(merge["operation_id"])
    eventually(lambda: (api.totals()["unique_visitors"], api.visits_of(a)), (4, 4))
    assert api.get("identity", f"/v1/persons/{b}").status_code == 404

    split = api.send("POST", f"/v1/operations/{merge['operation_id']}/undo")
    api.completed(split["operation_id"])
    eventually(lambda: (api.totals()["unique_visitors"], api.visits_of(a), api.visits_of(b)), (5, 2, 2))

    crop_urls = [s["crop_url"] for s in api.get("identity", f"/v1/persons/{c}").json()["sightings"]]
    assert crop_urls and all(httpx.get(url, timeout=5).status_code == 200 for url in crop_urls)
    erasure = api.send("DELETE", f"/v1/persons/{c}")
    api.completed(erasure["operation_id"])
    eventually(lambda: (api.totals()["unique_visitors"], api.totals()["visits"], api.visits_of(c)), (4, 8, 0))
    assert api.get("identity", f"/v1/persons/{c}").status_code == 404
    assert all(httpx.get(url, timeout=5).status_code in (403, 404) for url in crop_urls)

    c_name = PEOPLE[2]  # persons by first sighting follow the photos' order in the folder
    run_edge(stack, photos_folder(shared, run_dir, 0, (c_name,)), DAY_ONE + timedelta(days=2), shared, outbox)
    eventually(lambda: api.totals()["unique_visitors"], 5)  # C's face again: a new person, no vector of C left
    assert c not in {p["person_id"] for p in api.persons()}

    eventually(lambda: api.get("audit", "/v1/audit/verify", tenant_id=TENANT).json()["ok"], True)


def test_merge_and_erasure_complete_after_services_are_killed(stack: Stack, make_token: Callable[..., str]) -> None:
    api = Api(stack, make_token)
    eventually(lambda: len(api.persons()) >= 4, True)
    d, e, f = (p["person_id"] for p in sorted(api.persons(), key=lambda p: p["first_seen_at"])[:3])
    before, f_visits = api.totals(), api.visits_of(f)
    merge = api.send("POST", f"/v1/persons/{d}/merge", {"person_ids": [e]})
    for name in ("matcher", "reporting", "ingest"):
        stack.kill(name)
    erasure = api.send("DELETE", f"/v1/persons/{f}")
    for name in ("matcher", "reporting", "ingest"):
        stack.start(name)

    api.completed(merge["operation_id"])
    api.completed(erasure["operation_id"])
    expected = (before["unique_visitors"] - 2, before["visits"] - f_visits, api.visits_of(d) > 0)
    eventually(lambda: (api.totals()["unique_visitors"], api.totals()["visits"], api.visits_of(d) > 0), expected)
    assert api.visits_of(e) == 0 and api.get("identity", f"/v1/persons/{f}").status_code == 404
