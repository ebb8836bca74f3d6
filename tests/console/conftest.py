"""The `make dev` demo on real infrastructure, with the console, for the browser tests.

Every service runs as its own process on free ports, the demo edge feeds the same two days `make dev` feeds
(devstack/demo.py: everyone's first photo, then the second of those who have one), and the console runs as
its own process beside them. The browser is Debian's chromium driven by Playwright (`make browser` installs
it and axe-core); screenshots go to `.browser/screenshots/` (git-ignored: they show faces)."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devstack.demo import build_demo_days
from devstack.infra import ManagedProcess, free_port
from devstack.nats_auth import SYSTEM_USER, NatsTrust, device_authority_environment
from devstack.stack import (
    CONSOLE,
    SERVICE_NAMES,
    Endpoints,
    SigningKeys,
    start_console,
    start_services,
    wait_until_ready,
)
from tests.support import register_camera

TENANT, SITE, CAMERA = "consoledemo", "store-1", "entrance"
DAY_TWO = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=1)
DAY_ONE = DAY_TWO - timedelta(days=1)
"""`make dev`'s demo days: the two before today, inside the console's default report range (the last 7 days)."""
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("REVISIT_CHROMIUM", "/usr/bin/chromium"))
AXE = REPO / ".browser" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(os.environ.get("REVISIT_SCREENSHOT_DIR", REPO / ".browser" / "screenshots"))


@dataclass
class DemoStack:
    ports: dict[str, int]
    console_url: str
    make_token: Callable[..., str]
    people: int
    returning: int

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.make_token(TENANT, ['admin'])}"}

    def totals(self) -> dict:
        params = {"site_id": SITE, "from": f"{DAY_ONE:%Y-%m-%d}", "to": f"{DAY_TWO:%Y-%m-%d}"}
        response = httpx.get(self.url("reporting", "/v1/reports/visitors"), params=params, headers=self.admin())
        return response.json()["totals"]


def browser_tools_or_skip() -> None:
    """CI (`make test`) installs both; a developer running pytest alone is told how, unless CI is set."""
    missing = [str(path) for path in (CHROMIUM, AXE) if not path.exists()]
    if missing:
        reason = f"browser tools missing ({', '.join(missing)}): `make browser` installs chromium and axe-core"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def run_demo_edge(folder: Path, clock_start: datetime, nats_url: str, device: Path, shared: Path, outbox: Path) -> None:
    """The demo edge exactly as `make dev` runs it (devstack/__main__.py run_edge)."""
    command = [
        sys.executable, "-m", "edge", "run", "--source", str(folder), "--tenant", TENANT, "--site", SITE,
        "--camera", CAMERA, "--model-dir", str(shared / "models"), "--nats-url", nats_url,
        "--nats-credentials", str(device), "--clock-start", clock_start.isoformat(), "--outbox", str(outbox),
        "--metrics-port", "0",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def wait_for(check: Callable[[], object], expected: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (value := check()) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert value == expected


@pytest.fixture(scope="module")
def demo(
    nats_url: str,
    nats_users: dict[str, Path],
    nats_trust: NatsTrust,
    mint_device: Callable[..., Path],
    postgres_dsn: str,
    s3_endpoint: str,
    keys: SigningKeys,
    shared: Path,
    run_dir: Path,
    make_token: Callable[..., str],
) -> Iterator[DemoStack]:
    browser_tools_or_skip()
    authority = device_authority_environment(nats_trust, nats_url, nats_users[SYSTEM_USER])
    endpoints = Endpoints(
        nats_url, postgres_dsn, s3_endpoint, str(run_dir / "console-milvus.db"), nats_users, authority
    )
    ports = {name: free_port() for name in (*SERVICE_NAMES, CONSOLE)}
    log_dir = run_dir / "console-logs"
    processes: list[ManagedProcess] = start_services(endpoints, keys, ports, log_dir, environment="test")
    try:
        wait_until_ready(processes, ports)
        register_camera(f"http://127.0.0.1:{ports['identity']}", make_token(TENANT, ["admin"]), SITE, CAMERA)
        processes.append(start_console(keys, ports, ports[CONSOLE], log_dir, environment="test"))
        wait_until_ready(processes[-1:], ports)
        days = build_demo_days(shared / "faces", run_dir / "console-days", DAY_ONE, DAY_TWO)
        device = mint_device(TENANT, SITE, (CAMERA,))
        for day in days:
            run_demo_edge(day.folder, day.clock_start, nats_url, device, shared, run_dir / "console-outbox.db")
        stack = DemoStack(
            ports, f"http://127.0.0.1:{ports[CONSOLE]}", make_token, len(days[0].people), len(days[1].people)
        )
        expected = {"unique_visitors": stack.people, "visits": stack.people + stack.returning}
        wait_for(lambda: {key: stack.totals()[key] for key in expected}, expected)
        yield stack
    finally:
        for process in processes:
            process.stop()


@pytest.fixture(scope="module")
def chromium(demo: DemoStack) -> Iterator[object]:
    """Started after the demo and stopped with the module: Playwright's sync API holds an event loop in this
    thread while it runs, and the infrastructure fixtures (here and in later modules) run theirs with asyncio.run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()
