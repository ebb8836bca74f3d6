"""Lifecycle benchmark (`python -m bench lifecycle`): how long merges, erasures and duplicate suggestions take.

The whole stack runs as in `make dev` (embedded NATS, Postgres, S3 and Milvus Lite, every service its own
process). Faces enter as `FaceIngested` events (the edge and ingest are not what is measured), so the
matcher stores their vectors, identity their sightings and reporting their visits. Then:

- one merge of 100 persons holding 10,000 sightings into one more person, from the API call until the
  operation is completed (every service's step done);
- erasures of 20 persons of 10 sightings each, one after another, each from `DELETE` until completed;
- duplicate suggestions over 10,000 stored persons (the matcher's route, in process on its own Milvus file).
"""

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import nats
import numpy as np

from bench.report import table, write_section
from devstack.infra import free_port, start_nats, start_postgres, start_s3
from devstack.nats_auth import ADMIN_USER, load_or_create_trust, write_user_credentials
from devstack.stack import SERVICE_NAMES, Endpoints, load_or_create_keys, start_services, wait_until_ready
from schemas import FaceIngested, PersonKind, subjects
from schemas.ids import new_event_id
from services.common.auth import issue_token
from services.matcher.adapters.milvus import FaceVectorStore, StoredVector
from services.matcher.bootstrap import bootstrap as matcher_bootstrap
from services.matcher.config import MatcherSettings

TENANT, SITE, MODEL, DIM = "bench", "store-1", "bench-model@00000000", 128
MERGED_PERSONS, SIGHTINGS_PER_MERGED = 100, 100
ERASED_PERSONS, SIGHTINGS_PER_ERASED = 20, 10
DUPLICATE_PERSONS = 10_000
START = np.datetime64("2026-10-01T08:00:00")


def token_for(private_pem: str, role: str) -> str:
    return issue_token(
        private_pem, subject=f"bench-{role}", tenant_id=TENANT, roles=[role], issuer="revisit", audience="revisit"
    )


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def faces(rng: np.random.Generator, persons: int, sightings: int, first_hour: int) -> list[list[FaceIngested]]:
    """`sightings` faces of each of `persons` new people (noisy copies of one face, cosine about 0.9), one
    person an hour, its sightings a minute apart."""
    people = []
    for person in range(persons):
        base = unit(rng.normal(size=DIM))
        vectors = unit(base + 0.33 * rng.normal(size=(sightings, DIM)) / np.sqrt(DIM))
        hour = START + np.timedelta64(first_hour + person, "h")
        people.append([ingested(v, hour + np.timedelta64(k, "m")) for k, v in enumerate(vectors)])
    return people


def ingested(vector: np.ndarray, at: np.datetime64) -> FaceIngested:
    event_id = new_event_id()
    return FaceIngested.model_validate(
        {
            "event_id": str(event_id),
            "tenant_id": TENANT,
            "site_id": SITE,
            "camera_id": "entrance",
            "captured_at": f"{at}Z",
            "track_id": f"t-{event_id.hex[:8]}",
            "embedding_model": MODEL,
            "box": {"x": 0, "y": 0, "width": 100, "height": 100},
            "landmarks": [(0, 0)] * 5,
            "detector_score": 0.9,
            "quality": 0.9,
            "source_event_id": str(uuid.uuid4()),
            "embedding": [float(x) for x in vector],
            "crop_key": f"{TENANT}/{SITE}/2026/10/01/{event_id}.jpg",
        }
    )


async def publish(url: str, admin: Path, people: list[list[FaceIngested]]) -> None:
    connection = await nats.connect(url, user_credentials=str(admin))
    js = connection.jetstream()
    for person in people:
        first, rest = person[0], person[1:]
        await js.publish(
            subjects.face_ingested(TENANT, SITE), first.to_json_bytes(), headers={"Nats-Msg-Id": str(first.event_id)}
        )
        await asyncio.sleep(0.05)  # the person's first face is stored before its others are searched
        for event in rest:
            await js.publish(
                subjects.face_ingested(TENANT, SITE),
                event.to_json_bytes(),
                headers={"Nats-Msg-Id": str(event.event_id)},
            )
    await connection.close()


class Identity:
    def __init__(self, port: int, token: str) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {token}"})

    def persons(self) -> dict[str, int]:
        found: dict[str, int] = {}
        cursor: str | None = None
        while True:
            page = self.client.get("/v1/persons", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
            body = page.json()
            found |= {p["person_id"]: p["sightings"] for p in body["items"]}
            if (cursor := body["next_cursor"]) is None:
                return found

    def wait_for(self, persons: int, sightings: int, timeout: float = 900) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.persons()
            if len(found) >= persons and sum(found.values()) >= sightings:
                return found
            time.sleep(2)
        raise RuntimeError(f"identity has {len(found)} persons, {sum(found.values())} sightings after {timeout}s")

    def completed_after(self, response: httpx.Response) -> float:
        """Seconds from the request until its operation is completed."""
        assert response.status_code == 202, response.text
        started, operation_id = time.perf_counter(), response.json()["operation_id"]
        while self.client.get(f"/v1/operations/{operation_id}").json()["status"] != "completed":
            time.sleep(0.05)
        return time.perf_counter() - started


def stack_figures(folder: Path) -> list[list[object]]:
    trust = load_or_create_trust(folder / "keys" / "nats")
    users = write_user_credentials(trust, folder / "nats-users")
    url, nats_process = start_nats(folder / "nats", folder / "logs", free_port(), trust)
    postgres = start_postgres(folder / "postgres")
    s3, s3_process = start_s3(folder / "s3", folder / "logs", free_port())
    keys = load_or_create_keys(folder / "keys")
    ports = {name: free_port() for name in SERVICE_NAMES}
    processes = start_services(
        Endpoints(url, postgres.dsn, s3, str(folder / "milvus.db"), users), keys, ports, folder / "logs"
    )
    try:
        wait_until_ready(processes, ports)
        identity = Identity(ports["identity"], token_for(keys.private_pem, "admin"))
        rng = np.random.default_rng(11)
        merged_people = faces(rng, MERGED_PERSONS + 1, SIGHTINGS_PER_MERGED, 0)
        erased_people = faces(rng, ERASED_PERSONS, SIGHTINGS_PER_ERASED, 200)
        started = time.perf_counter()
        asyncio.run(publish(url, users[ADMIN_USER], merged_people + erased_people))
        total = (MERGED_PERSONS + 1) * SIGHTINGS_PER_MERGED + ERASED_PERSONS * SIGHTINGS_PER_ERASED
        persons = identity.wait_for(MERGED_PERSONS + 1 + ERASED_PERSONS, total)
        loaded = time.perf_counter() - started
        by_size = sorted(persons, key=lambda p: -persons[p])
        target, merged = by_size[0], by_size[1 : MERGED_PERSONS + 1]
        merge_seconds = identity.completed_after(
            identity.client.post(f"/v1/persons/{target}/merge", json={"person_ids": merged})
        )
        erasures = [
            identity.completed_after(identity.client.delete(f"/v1/persons/{p}")) for p in by_size[-ERASED_PERSONS:]
        ]
        quantiles = statistics.quantiles(erasures, n=20)
        return [
            [
                "load: faces through matcher, identity, reporting",
                f"{total:,} sightings, {len(persons)} persons",
                f"{loaded:.1f} s ({total / loaded:.0f} faces/s)",
            ],
            [
                "merge (API call until every step is done)",
                f"{MERGED_PERSONS} persons, {MERGED_PERSONS * SIGHTINGS_PER_MERGED:,} sightings into one",
                f"{merge_seconds:.2f} s",
            ],
            [
                "erasure end to end, one person at a time",
                f"{ERASED_PERSONS} persons of {SIGHTINGS_PER_ERASED} sightings",
                f"p50 {statistics.median(erasures):.2f} s, p95 {quantiles[18]:.2f} s",
            ],
        ]
    finally:
        for process in processes:
            process.stop()
        s3_process.stop()
        postgres.stop()
        nats_process.stop()


async def duplicates_figure(folder: Path) -> list[object]:
    trust = load_or_create_trust(folder / "keys" / "nats")
    users = write_user_credentials(trust, folder / "nats-users")
    url, nats_process = start_nats(folder / "dup-nats", folder / "logs", free_port(), trust)
    keys = load_or_create_keys(folder / "keys")
    settings = MatcherSettings(
        nats_url=url,
        nats_credentials=users["matcher"],
        milvus_uri=str(folder / "dup-milvus.db"),
        jwt_public_key=keys.public_pem,
        environment="test",
    )
    try:
        async with matcher_bootstrap(settings) as matcher:
            store: FaceVectorStore = matcher.store
            rng = np.random.default_rng(12)
            vectors = unit(rng.normal(size=(DUPLICATE_PERSONS, DIM)))
            twins = unit(vectors[:50] + 0.02 * rng.normal(size=(50, DIM)))  # 50 persons enrolled twice
            rows = [
                StoredVector(uuid.uuid4(), uuid.uuid4(), TENANT, PersonKind.CUSTOMER, 0, v.tolist())
                for v in np.vstack([vectors, twins])
            ]
            for start in range(0, len(rows), 2_000):
                await store.insert(MODEL, DIM, rows[start : start + 2_000])
            token = token_for(keys.private_pem, "analyst")
            transport = httpx.ASGITransport(app=matcher.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://matcher") as client:
                started = time.perf_counter()
                response = await client.get(
                    "/v1/persons/duplicates",
                    params={"min_similarity": 0.9, "limit": 100},
                    headers={"authorization": f"Bearer {token}"},
                )
                seconds = time.perf_counter() - started
            found = len(response.json()["items"])
    finally:
        nats_process.stop()
    return [
        "duplicate suggestions (matcher route, exact)",
        f"{len(rows):,} persons of one vector, 50 of them twice",
        f"{seconds:.2f} s, {found} pairs found",
    ]


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        rows = stack_figures(folder)
        rows.append(asyncio.run(duplicates_figure(folder)))
    body = table(["what", "size", "time"], rows) + (
        "\n\nEvery service is its own process on the embedded stack (`make dev`'s), on this 2-core machine; "
        "faces enter as `FaceIngested`. A merge or an erasure is completed when identity has heard from the "
        "matcher (vectors), reporting (sightings and visits) and, for an erasure, ingest (crops)."
        f"\n\n_Whole benchmark: {time.perf_counter() - started:.0f} s._"
    )
    write_section("lifecycle", "Person lifecycle: merge, erasure, duplicate suggestions", body)


if __name__ == "__main__":
    main()
