"""The labelled counters the `increase() > 0` alerts watch exist at 0 from start-up, so the first burst is a step
Prometheus can see (a series born at its first increment has no earlier sample to increase from). The alerts
themselves are proven with promtool (test_rules.py); this is the code's side of the bargain."""

import subprocess
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faststream.nats import NatsBroker
from prometheus_client import REGISTRY

from schemas import subjects
from services.common import http
from services.common.bus import consumed_subjects, durable_pull
from services.common.metrics import CONSUMED_OUTCOMES, count_consumed_from_zero
from services.common.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]


def consumed(service: str, family: str, outcome: str) -> float | None:
    labels = {"service": service, "subject_family": family, "outcome": outcome}
    value: float | None = REGISTRY.get_sample_value("revisit_messages_consumed_total", labels)
    return value


def broker_with_subscribers(*filters: str) -> NatsBroker:
    broker = NatsBroker("nats://127.0.0.1:1")  # never connected: registering subscribers needs no server
    for index, subject in enumerate(filters):

        @broker.subscriber(**durable_pull(subjects.FACES_STREAM, f"durable-{index}", subject, 5))
        async def handle(message: dict[str, Any]) -> None:
            return None

    return broker


def test_consumed_subjects_are_the_subscribers_filters() -> None:
    broker = broker_with_subscribers(subjects.FACES_MATCHED_ALL, "identity.persons_merged.*")
    assert sorted(consumed_subjects(broker)) == ["faces.matched.>", "identity.persons_merged.*"]


def test_every_outcome_of_a_named_family_starts_at_zero() -> None:
    service = "first-burst-named"
    assert consumed(service, "faces.matched", "dead_lettered") is None
    count_consumed_from_zero(service, ["faces.matched.>", "identity.persons_merged.*"])
    for family in ("faces.matched", "identity.persons_merged"):
        assert [consumed(service, family, outcome) for outcome in CONSUMED_OUTCOMES] == [0.0] * len(CONSUMED_OUTCOMES)


def test_a_wildcard_family_is_left_to_its_first_increment() -> None:
    """`audit.>` names no family: a series `audit.>` would never move, so none is made."""
    service = "first-burst-wildcard"
    count_consumed_from_zero(service, ["audit.>"])
    assert consumed(service, "audit.>", "dead_lettered") is None


@dataclass
class Running:
    app: Any
    broker: NatsBroker


async def test_a_service_exports_its_consumers_series_before_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve_service`, what every `python -m services.<name>` runs, makes the series before serving."""
    monkeypatch.setenv("REVISIT_NATS_URL", "nats://127.0.0.1:1")
    seen_at_serve: list[float | None] = []

    async def serve(app: Any, host: str, port: int, broker: NatsBroker | None) -> None:
        seen_at_serve.append(consumed("first-burst-service", "faces.ingested", "dead_lettered"))

    @asynccontextmanager
    async def bootstrap(settings: ServiceSettings) -> Any:
        yield Running(app=None, broker=broker_with_subscribers(subjects.FACES_INGESTED_ALL))

    monkeypatch.setattr(http, "serve", serve)
    await http.serve_service("first-burst-service", ServiceSettings, bootstrap)
    assert seen_at_serve == [0.0]


EDGE_OUTBOX_AT_START = """
import sys
from pathlib import Path
from prometheus_client import REGISTRY
from edge.outbox import Outbox, OutboxLimits

def dropped(reason):
    return REGISTRY.get_sample_value("revisit_edge_outbox_dropped_total", {"reason": reason})

before = [dropped(reason) for reason in ("age", "count", "bytes")]
Outbox(Path(sys.argv[1]), OutboxLimits(max_events=10, max_bytes=10_000, max_age_seconds=60)).close()
print(before, [dropped(reason) for reason in ("age", "count", "bytes")])
"""


def test_the_edge_outbox_exports_every_drop_reason_at_zero(tmp_path: Path) -> None:
    """In a fresh process (the registry is global): no series before the outbox opens, all three at 0 after."""
    result = subprocess.run(
        [sys.executable, "-c", EDGE_OUTBOX_AT_START, str(tmp_path / "outbox.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[None, None, None] [0.0, 0.0, 0.0]"
