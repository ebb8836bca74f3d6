"""The whole stack as `make dev` runs it (embedded NATS, Postgres, S3 and Milvus Lite, every service its own
process) on free ports in a folder of its own, with what the pipeline benchmark and `make chaos` need: synthetic
`FaceDetected` events of known people, publishing them as an edge does, reading the reporting API, each
service's CPU and memory, and killing or restarting any part."""

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import nats
import numpy as np

from devstack.infra import EmbeddedPostgres, ManagedProcess, free_port, spawn, start_nats, start_postgres, start_s3
from devstack.nats_auth import ADMIN_USER, NatsTrust, load_or_create_trust, write_user_credentials
from devstack.stack import (
    SERVICE_NAMES,
    Endpoints,
    SigningKeys,
    load_or_create_keys,
    service_environment,
    shared_dir,
    start_services,
    wait_until_ready,
)
from edge.models import EMBEDDERS, resolve_model
from schemas import FaceDetected, subjects
from schemas.ids import new_event_id
from services.common.auth import issue_token

SITE, CAMERA, DIM = "store-1", "entrance", 128
MAX_PERSON_COSINE = 0.28
"""Two synthetic people's faces are at most this similar, so their noisy sightings (cosine about 0.98 to their
own face) stay well below the matcher's 0.40 threshold for anyone else: drawn at random, 500 faces in 128
dimensions already have a pair at 0.40, which the matcher rightly takes for one person, and the truth of the
workload would no longer be exact."""
VISIT_SPACING = timedelta(minutes=40)  # more than reporting's 30-minute visit gap: every sighting is a visit
PAGE_SIZE = 4096
"""Clock ticks per second of /proc/<pid>/stat and bytes of a page of its statm."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def separated_faces(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` random unit faces, no two with a cosine above MAX_PERSON_COSINE (drawn in blocks, kept greedily)."""
    kept = np.empty((0, DIM), dtype=np.float32)
    while len(kept) < count:
        block = unit(rng.normal(size=(256, DIM)))
        if len(kept):
            block = block[(block @ kept.T).max(axis=1) <= MAX_PERSON_COSINE]
        for candidate in block:
            if len(kept) == count:
                break
            if not len(kept) or float((kept[-256:] @ candidate).max()) <= MAX_PERSON_COSINE:
                kept = np.vstack([kept, candidate[None, :]])
    return kept


def crop_jpeg(rng: np.random.Generator) -> bytes:
    """A 112x112 face-sized JPEG (about 5 KB)."""
    gradient = np.linspace(0, 200, 112, dtype=np.float32)[None, :, None] + rng.normal(0, 12, (112, 112, 3))
    ok, encoded = cv2.imencode(".jpg", np.clip(gradient, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(encoded)


@dataclass(frozen=True)
class Workload:
    """`people` people seen `visits` times each, one sighting per visit, visit by visit (everyone's first, then
    everyone's second...), so the truth is exact: visits = people x visits, unique visitors = people."""

    tenant: str
    people: int
    visits: int
    crops: bool
    model: str
    seed: int = 7
    first_visit: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    )

    @property
    def events(self) -> int:
        return self.people * self.visits

    def report_params(self) -> dict[str, str]:
        last = self.first_visit + VISIT_SPACING * self.visits
        return {"site_id": SITE, "from": f"{self.first_visit:%Y-%m-%d}", "to": f"{last:%Y-%m-%d}", "granularity": "day"}

    def build(self) -> list[FaceDetected]:
        rng = np.random.default_rng(self.seed)
        faces = separated_faces(rng, self.people)
        crop = crop_jpeg(rng) if self.crops else None
        events = []
        for visit in range(self.visits):
            vectors = unit(faces + 0.2 * rng.normal(size=faces.shape) / np.sqrt(DIM))  # cosine ~0.98 to the face
            for person, vector in enumerate(vectors):
                at = self.first_visit + visit * VISIT_SPACING + timedelta(milliseconds=person)
                events.append(self.detected(vector, at, crop))
        return events

    def detected(self, vector: np.ndarray, at: datetime, crop: bytes | None) -> FaceDetected:
        event_id = new_event_id()
        return FaceDetected.model_validate(
            {
                "event_id": str(event_id),
                "tenant_id": self.tenant,
                "site_id": SITE,
                "camera_id": CAMERA,
                "captured_at": at.isoformat(),
                "track_id": f"t-{event_id.hex[-12:]}",
                "embedding_model": self.model,
                "box": {"x": 10, "y": 10, "width": 112, "height": 112},
                "landmarks": [(40, 50), (70, 50), (55, 65), (45, 80), (65, 80)],
                "detector_score": 0.95,
                "quality": 0.9,
                "embedding": [float(x) for x in vector],
                "crop_jpeg": crop,
            }
        )


def bench_model_id() -> str:
    """The registered model id of the demo's embedder (ingest refuses an unknown model)."""
    return resolve_model(shared_dir() / "models", EMBEDDERS["mobilefacenet_arcface_128"]).model_id


@dataclass
class ProcessSample:
    cpu_seconds: float
    rss_bytes: int


def sample(pid: int) -> ProcessSample:
    """CPU time (user + system) and resident memory of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    return ProcessSample(cpu, rss)


class PipelineStack:
    """Everything started by `start()`, stopped by `stop()`; parts can be killed and restarted in between."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.logs = folder / "logs"
        self.trust: NatsTrust = load_or_create_trust(folder / "keys" / "nats")
        self.users = write_user_credentials(self.trust, folder / "keys" / "nats" / "users")
        self.keys: SigningKeys = load_or_create_keys(folder / "keys")
        self.ports = {name: free_port() for name in SERVICE_NAMES}
        self.nats_port, self.s3_port = free_port(), free_port()
        self.services: dict[str, ManagedProcess] = {}
        self.nats: ManagedProcess | None = None
        self.s3: ManagedProcess | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.endpoints: Endpoints | None = None

    def start(self) -> None:
        url, self.nats = start_nats(self.folder / "nats", self.logs, self.nats_port, self.trust)
        self.postgres = start_postgres(self.folder / "postgres")
        s3, self.s3 = start_s3(self.folder / "s3", self.logs, self.s3_port)
        self.endpoints = Endpoints(url, self.postgres.dsn, s3, str(self.folder / "milvus" / "faces.db"), self.users)
        (self.folder / "milvus").mkdir(exist_ok=True)
        started = start_services(self.endpoints, self.keys, self.ports, self.logs)
        self.services = {process.name: process for process in started}
        wait_until_ready(started, self.ports)

    def stop(self) -> None:
        for process in self.services.values():
            process.stop()
        for part in (self.s3, self.nats):
            if part is not None:
                part.stop()
        if self.postgres is not None:
            self.postgres.stop()

    # --- faults -------------------------------------------------------------------------------------------
    def kill_service(self, name: str) -> None:
        """kill -9, as an OOM killer or a node loss does."""
        process = self.services[name].process
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def restart_service(self, name: str) -> None:
        assert self.endpoints is not None
        self.kill_service(name)
        self.services[name].stop()
        env = {**service_environment(name, self.endpoints, self.keys, self.ports[name]), "PYTHONUNBUFFERED": "1"}
        self.services[name] = spawn(name, [sys.executable, "-m", f"services.{name}"], self.logs, env)

    def restart_nats(self) -> None:
        assert self.nats is not None
        if self.nats.process.poll() is None:
            os.kill(self.nats.process.pid, signal.SIGKILL)
        self.nats.process.wait()
        self.nats.stop()
        _, self.nats = start_nats(self.folder / "nats", self.logs, self.nats_port, self.trust)

    def restart_postgres(self) -> None:
        """Stop Postgres (fast shutdown: clients are cut off) and start it again on the same data."""
        assert self.postgres is not None
        self.postgres.stop()
        self.postgres = start_postgres(self.folder / "postgres")

    def wait_ready(self, timeout: float = 180) -> None:
        wait_until_ready(list(self.services.values()), self.ports, timeout)

    # --- measuring ------------------------------------------------------------------------------------------
    def pids(self) -> dict[str, int]:
        found = {name: process.process.pid for name, process in self.services.items()}
        for name, part in (("nats-server", self.nats), ("s3", self.s3)):
            if part is not None:
                found[name] = part.process.pid
        return found

    def samples(self) -> dict[str, ProcessSample]:
        return {name: sample(pid) for name, pid in self.pids().items()}

    def token(self, tenant: str) -> str:
        return issue_token(
            self.keys.private_pem, subject="bench", tenant_id=tenant, roles=["admin", "analyst"], issuer="revisit",
            audience="revisit",
        )  # fmt: skip

    def register(self, tenant: str, model: str) -> None:
        """The tenant's site, camera and embedding model, through identity's API as an admin would."""
        identity = f"http://127.0.0.1:{self.ports['identity']}/v1"
        headers = {"authorization": f"Bearer {self.token(tenant)}"}
        for path, body in (
            (f"/sites/{SITE}", {"name": "Bench store", "time_zone": "UTC"}),
            (f"/cameras/{CAMERA}", {"site_id": SITE, "name": "Entrance"}),
            ("/embedding-models", {"embedding_models": [model]}),
        ):
            response = httpx.put(f"{identity}{path}", json=body, headers=headers, timeout=30)
            response.raise_for_status()

    def wait_registered(self, tenant: str, timeout: float = 30) -> None:
        """Ingest mirrors the registry; the first events wait until it knows the tenant (a refused event is lost)."""
        time.sleep(min(timeout, 2.0))

    def totals(self, workload: Workload) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.ports['reporting']}/v1/reports/visitors"
        headers = {"authorization": f"Bearer {self.token(workload.tenant)}"}
        response = httpx.get(url, params=workload.report_params(), headers=headers, timeout=30)
        response.raise_for_status()
        return dict(response.json()["totals"])

    def persons(self, tenant: str) -> int:
        """How many persons identity holds for the tenant (a duplicate person shows as one too many)."""
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.ports['identity']}",
            headers={"authorization": f"Bearer {self.token(tenant)}"},
        )
        count, cursor = 0, None
        while True:
            page = client.get(
                "/v1/persons", params={"limit": 500, **({"cursor": cursor} if cursor else {})}, timeout=30
            )
            page.raise_for_status()
            body = page.json()
            count += len(body["items"])
            if (cursor := body["next_cursor"]) is None:
                return count


@contextmanager
def running_stack(folder: Path) -> Iterator[PipelineStack]:
    stack = PipelineStack(folder)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


async def publish(
    url: str, credentials: Path, events: list[FaceDetected], rate: float | None = None, window: int = 256
) -> list[float]:
    """Publish as an edge does (JetStream, `Nats-Msg-Id` = event id), `window` acknowledgements in flight; at
    `rate` events/s if given, else as fast as acknowledged. Returns each event's publish time (monotonic)."""
    connection = await nats.connect(url, user_credentials=str(credentials), max_reconnect_attempts=-1)
    js = connection.jetstream()
    sent_at: list[float] = []
    in_flight: set[asyncio.Task[object]] = set()
    started = time.monotonic()
    for index, event in enumerate(events):
        if rate is not None:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        subject = subjects.face_detected(event.tenant_id, event.site_id, event.camera_id)
        sent_at.append(time.monotonic())
        in_flight.add(
            asyncio.create_task(
                js.publish(subject, event.to_json_bytes(), headers={"Nats-Msg-Id": str(event.event_id)}, timeout=60)
            )
        )
        if len(in_flight) >= window:
            done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
    for task in in_flight:
        await task
    await connection.close()
    return sent_at


def admin_credentials(stack: PipelineStack) -> Path:
    return stack.users[ADMIN_USER]


def new_tenant(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
