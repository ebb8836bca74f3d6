"""Prometheus metrics of the edge, declared once, and the HTTP endpoint serving `/metrics` and `/healthz`."""

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

FRAMES = Counter("revisit_edge_frames_total", "Frames processed.", ["camera"])
FACES = Counter("revisit_edge_faces_total", "Faces detected above the score and size thresholds.", ["camera"])
TRACKS = Counter("revisit_edge_tracks_total", "Face tracks started.", ["camera"])
EVENTS = Counter(
    "revisit_edge_events_total",
    "FaceDetected events, by outcome: queued (in the outbox), published (PubAck), duplicate (PubAck, dropped).",
    ["outcome"],
)
STAFF_FILTERED = Counter(
    "revisit_edge_staff_filtered_total", "Faces not published because they match the staff gallery.", ["camera"]
)
STREAM_UP = Gauge(
    "revisit_edge_stream_up", "1 while the live stream delivers frames, 0 while reconnecting.", ["camera"]
)
STREAM_FROZEN = Gauge("revisit_edge_stream_frozen", "1 while the stream repeats the same picture.", ["camera"])
STREAM_BLACK = Gauge("revisit_edge_stream_black", "1 while the stream is dark (mean luminance low).", ["camera"])
STREAM_RECONNECTS = Counter("revisit_edge_stream_reconnects_total", "Reconnections to a live stream.", ["camera"])
OUTBOX_DEPTH = Gauge("revisit_edge_outbox_depth", "Events waiting in the outbox for a PubAck.")
OUTBOX_DROPPED = Counter("revisit_edge_outbox_dropped_total", "Events dropped by the outbox bounds.", ["reason"])
OUTBOX_DEAD = Counter(
    "revisit_edge_outbox_dead_total", "Events the bus refused for good (too large, invalid), moved to the dead table."
)
DETECT_SECONDS = Histogram("revisit_edge_detect_seconds", "Face detection time per frame.", buckets=LATENCY_BUCKETS)
EMBED_SECONDS = Histogram("revisit_edge_embed_seconds", "Embedding time per face.", buckets=LATENCY_BUCKETS)
PUBLISH_SECONDS = Histogram("revisit_edge_publish_seconds", "Publish until PubAck.", buckets=LATENCY_BUCKETS)

HealthCheck = Callable[[], Mapping[str, object]]
"""Returns the health document; a false `ok` makes `/healthz` answer 503."""


def _handler(health: HealthCheck) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest())
            elif self.path == "/healthz":
                document = health()
                self._send(200 if document.get("ok") else 503, "application/json", json.dumps(document).encode())
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line
            return

    return Handler


def serve_metrics(host: str, port: int, health: HealthCheck) -> ThreadingHTTPServer:
    """Serve `/metrics` and `/healthz` from a daemon thread; the caller shuts the server down."""
    server = ThreadingHTTPServer((host, port), _handler(health))
    threading.Thread(target=server.serve_forever, name="edge-metrics", daemon=True).start()
    return server
