"""The whole system on real infrastructure: the edge CLI on labelled photos of ../shared/faces, every
service as its own process, and the visitor counts read from the reporting API.

Day one shows everyone's first photo, day two the second photo of everyone who has one. Broken
matching fails it: random embeddings would make every photo a new person, a threshold that merges
everyone would leave one visitor."""

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devstack.demo import build_demo_days
from devstack.infra import free_port
from devstack.stack import SERVICE_NAMES, Endpoints, SigningKeys, start_services, wait_until_ready
from tests.support import register_camera

TENANT, SITE = "e2e", "store-1"
DAY_ONE = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=3)
"""Recent days: ingest refuses sightings older than the edges' outbox keeps events (7 days)."""
DAY_TWO = DAY_ONE + timedelta(days=1)


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {name: free_port() for name in SERVICE_NAMES}


@pytest.fixture(scope="module")
def system(
    nats_url: str,
    nats_users: dict[str, Path],
    postgres_dsn: str,
    s3_endpoint: str,
    keys: SigningKeys,
    ports: dict[str, int],
    run_dir: Path,
    make_token: Callable[..., str],
) -> Iterator[Endpoints]:
    """Every service as its own process, each as its own least-privilege NATS user."""
    endpoints = Endpoints(nats_url, postgres_dsn, s3_endpoint, str(run_dir / "e2e-milvus.db"), nats_users)
    processes = start_services(endpoints, keys, ports, run_dir / "e2e-logs", environment="test")
    try:
        wait_until_ready(processes, ports)
        register_camera(f"http://127.0.0.1:{ports['identity']}", make_token(TENANT, ["admin"]), SITE, "entrance")
        yield endpoints
    finally:
        for process in processes:
            process.stop()


def run_edge(
    source: Path, clock_start: datetime, endpoints: Endpoints, device: Path, shared: Path, outbox: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "run",
            "--source",
            str(source),
            "--tenant",
            TENANT,
            "--site",
            SITE,
            "--camera",
            "entrance",
            "--model-dir",
            str(shared / "models"),
            "--nats-url",
            endpoints.nats_url,
            "--nats-credentials",
            str(device),
            "--clock-start",
            clock_start.isoformat(),
            "--outbox",
            str(outbox),
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def visitor_report(port: int, token: str) -> dict:
    response = httpx.get(
        f"http://127.0.0.1:{port}/v1/reports/visitors",
        params={"site_id": SITE, "from": f"{DAY_ONE:%Y-%m-%d}", "to": f"{DAY_TWO:%Y-%m-%d}", "granularity": "day"},
        headers={"authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_unique_and_returning_visitors_from_real_faces(
    system: Endpoints,
    mint_device: Callable[..., Path],
    shared: Path,
    ports: dict[str, int],
    run_dir: Path,
    make_token: Callable[..., str],
) -> None:
    device = mint_device(TENANT, SITE, ("entrance",))  # the edge box: its camera, its tenant's staff gallery
    days = build_demo_days(shared / "faces", run_dir / "e2e-days", DAY_ONE, DAY_TWO)
    people, returning = len(days[0].people), len(days[1].people)
    assert people >= 8 and returning >= 5  # the photo set is what the expected numbers rest on
    for day in days:
        run_edge(day.folder, day.clock_start, system, device, shared, run_dir / "e2e-outbox.db")

    token = make_token(TENANT, ["analyst"])
    expected_visits = people + returning
    deadline = time.monotonic() + 90
    report = visitor_report(ports["reporting"], token)
    while report["totals"]["visits"] < expected_visits and time.monotonic() < deadline:
        time.sleep(0.5)
        report = visitor_report(ports["reporting"], token)
    time.sleep(2)  # anything still in flight would change the counts below
    report = visitor_report(ports["reporting"], token)

    totals = report["totals"]
    assert totals["unique_visitors"] == people, report
    assert totals["returning_visits"] == returning, report
    assert totals["visits"] == expected_visits
    assert totals["unidentified_sightings"] == 0  # every demo photo is a clear, frontal face: all identified
    by_day = {period["period_start"][:10]: period for period in report["periods"]}
    first, second = by_day[f"{DAY_ONE:%Y-%m-%d}"], by_day[f"{DAY_TWO:%Y-%m-%d}"]
    assert first["new_visitors"] == people and first["returning_visitors"] == 0
    assert second["returning_visitors"] == returning and second["new_visitors"] == 0

    # the other consumers of the same run: the person directory and the audit chain agree
    admin = {"authorization": f"Bearer {make_token(TENANT, ['admin'])}"}
    persons = httpx.get(f"http://127.0.0.1:{ports['identity']}/v1/persons", headers=admin, timeout=5).json()["items"]
    assert len(persons) == people
    deadline = time.monotonic() + 30
    while True:
        chain = httpx.get(f"http://127.0.0.1:{ports['audit']}/v1/audit/verify", headers=admin, timeout=5).json()
        if chain["records"] >= people + 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # one person_created record per person, and the registration's site, camera and models
    assert chain["ok"] and chain["records"] == people + 3
