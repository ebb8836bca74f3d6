"""The metrics endpoint: Prometheus text on /metrics, the health document on /healthz."""

import json
import urllib.error
import urllib.request

import pytest

from edge.metrics import FRAMES, serve_metrics


@pytest.fixture
def server():
    health = {"ok": True, "outbox_depth": 3}
    running = serve_metrics("127.0.0.1", 0, lambda: health)
    yield f"http://127.0.0.1:{running.server_address[1]}", health
    running.shutdown()


def test_metrics_and_healthz(server):
    base, health = server
    FRAMES.labels("metrics-test").inc(2)
    with urllib.request.urlopen(f"{base}/metrics") as response:
        text = response.read().decode()
    assert 'revisit_edge_frames_total{camera="metrics-test"} 2.0' in text
    with urllib.request.urlopen(f"{base}/healthz") as response:
        assert json.loads(response.read()) == {"ok": True, "outbox_depth": 3}
    health["ok"] = False
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{base}/healthz")
    assert error.value.code == 503
