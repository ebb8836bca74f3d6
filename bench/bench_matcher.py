"""Matcher throughput and recall on Milvus Lite at 10,000 and 100,000 stored vectors of one tenant.

Per size: the tenant's vectors are written to Milvus Lite; `match_faces` (the consumer's batch function: decision
lookups, staff check, tenant lease, search of the in-memory copy, assignment, vector insert, vector log, decision
records) runs over batches of half returning, half new faces. Reported: matches/s, per-batch latency, recall@1
of the search against an exact numpy search over the rows read back from Milvus in the same run, and the ratio
to that brute-force limit (numpy alone, same batches, same rows). Milvus Lite's own exact (FLAT) search is timed
on the same batches for comparison, and the first load of the tenant's copy from Milvus is timed too."""

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import nats
import numpy as np
from nats.aio.client import Client as NatsClient

from bench.report import table, write_section
from devstack.infra import free_port, start_nats
from devstack.nats_auth import ADMIN_USER, load_or_create_trust, write_user_credentials
from schemas import FaceIngested, FaceMatched, PersonKind
from schemas.base import Event
from services.matcher.adapters.ambiguous_pairs import AmbiguousPairs
from services.matcher.adapters.decisions import MatchDecisions
from services.matcher.adapters.milvus import SEARCH_LIMIT, FaceVectorStore, StoredVector
from services.matcher.adapters.not_same import NotSamePairs
from services.matcher.adapters.staff_gallery import StaffGallery
from services.matcher.adapters.step_ledger import StepLedger
from services.matcher.adapters.tenant_settings import TenantSettings
from services.matcher.bootstrap import open_vector_index
from services.matcher.config import MatcherSettings
from services.matcher.domain.not_same import NOT_SAME_MARGIN
from services.matcher.handlers import MatcherPorts, MatchOutcome, match_faces

DIM, MODEL, TENANT = 128, "bench-model@1", "bench"
SIZES = (10_000, 100_000)
BATCH = 256
EVENTS = 4_096
MILVUS_SEARCH_BATCHES = 3
"""Milvus Lite's FLAT search takes about a second per batch at 100,000 rows here: a few batches tell it."""


def unit(rows: np.ndarray) -> np.ndarray:
    normalised: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def ingested(vector: np.ndarray) -> FaceIngested:
    now = datetime.now(UTC)
    return FaceIngested(
        tenant_id=TENANT, site_id="s1", camera_id="c1", captured_at=now, track_id="t", embedding_model=MODEL,
        box={"x": 0, "y": 0, "width": 10, "height": 10}, landmarks=[(0, 0)] * 5, detector_score=0.9, quality=0.9,
        source_event_id=uuid.uuid4(), embedding=[float(x) for x in vector],
    )  # fmt: skip


async def populate(store: FaceVectorStore, persons: np.ndarray) -> float:
    """One vector per person, written in batches; returns seconds."""
    started = time.perf_counter()
    collection = await store.collection(MODEL, DIM)
    rows = [
        StoredVector(uuid.uuid4(), uuid.uuid4(), TENANT, PersonKind.CUSTOMER, 0, vector.tolist()) for vector in persons
    ]
    for start in range(0, len(rows), 5_000):
        await store.insert_into(collection, rows[start : start + 5_000])
    return time.perf_counter() - started


def workload(rng: np.random.Generator, persons: np.ndarray) -> np.ndarray:
    """Half returning persons (noisy copies, cosine about 0.9), half new random faces, shuffled."""
    chosen = rng.integers(0, len(persons), EVENTS // 2)
    returning = unit(persons[chosen] + 0.05 * rng.normal(size=(len(chosen), DIM)))
    new = unit(rng.normal(size=(EVENTS - len(chosen), DIM)))
    vectors: np.ndarray = np.vstack([returning, new])[rng.permutation(EVENTS)]
    return vectors


async def open_ports(store: FaceVectorStore, connection: NatsClient) -> MatcherPorts:
    async def drop(subject: str, event: Event) -> None:
        """Publishing is measured by the end-to-end benchmark; here events are dropped."""

    settings = MatcherSettings(nats_url="nats://unused", milvus_uri="unused", jwt_public_key="unused")
    return MatcherPorts(
        settings,
        store,
        await open_vector_index(settings, connection, store),
        await MatchDecisions.open(connection),
        await StaffGallery.open(connection),
        await NotSamePairs.open(connection),
        await StepLedger.open(connection),
        drop,
        await TenantSettings.open(connection),
        await AmbiguousPairs.open(connection),
    )


def brute_force_top1(
    stored: np.ndarray, persons: list[uuid.UUID], queries: np.ndarray
) -> tuple[list[uuid.UUID], float]:
    started = time.perf_counter()
    best = np.argmax(queries @ stored.T, axis=1)
    return [persons[i] for i in best.tolist()], time.perf_counter() - started


async def measure(folder: Path, connection: NatsClient, size: int) -> list[list[object]]:
    store = FaceVectorStore(str(folder / f"faces{size}.db"), "", "faces")
    await store.connect()
    rng = np.random.default_rng(size)
    persons = unit(rng.normal(size=(size, DIM)))
    insert_seconds = await populate(store, persons)
    ports = await open_ports(store, connection)
    load_started = time.perf_counter()
    async with ports.index.holding(TENANT, MODEL, DIM):
        pass
    load_seconds = time.perf_counter() - load_started
    vectors = workload(rng, persons)
    events = [ingested(v) for v in vectors]
    latencies: list[float] = []

    async def timed_match(batch: Sequence[FaceIngested]) -> list[MatchOutcome]:
        batch_started = time.perf_counter()
        outcomes = await match_faces(batch, ports)
        latencies.append(time.perf_counter() - batch_started)
        return outcomes

    started, cpu_started = time.perf_counter(), time.process_time()
    outcomes = []
    for start in range(0, len(events), BATCH):  # the batch consumer's way: one fetched batch after another
        outcomes += await timed_match(events[start : start + BATCH])
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    assert all(isinstance(outcome, FaceMatched) for outcome in outcomes)
    # the same run's exact answer: every row read back from Milvus, numpy over all of them, against the matcher's
    # search of its copy (caught up through the vector log) for the same faces
    rows, matrix = await store.tenant_vectors(await store.collection(MODEL, DIM), TENANT)
    stored, owners = unit(matrix), [row.person_id for row in rows]
    hits = agreed = total = 0
    brute_seconds = 0.0
    floor = ports.settings.match_threshold - NOT_SAME_MARGIN
    searched = [vectors[start : start + BATCH] for start in range(0, len(vectors), BATCH)]
    for queries in searched:
        async with ports.index.holding(TENANT, MODEL, DIM) as held:
            found = await held.search(queries, SEARCH_LIMIT)
            floored = await held.search(queries, SEARCH_LIMIT, floor)  # what the handler asks
        exact, elapsed = brute_force_top1(stored, owners, queries)
        brute_seconds += elapsed
        best = np.max(queries @ stored.T, axis=1)
        hits += sum(bool(c) and c[0].person_id == e for c, e in zip(found, exact, strict=True))
        agreed += sum(
            (bool(c) and c[0].person_id == e) if b >= floor else not c
            for c, e, b in zip(floored, exact, best.tolist(), strict=True)
        )
        total += len(queries)
    milvus_ms, milvus_hits, milvus_total = [], 0, 0
    for queries in searched[:MILVUS_SEARCH_BATCHES]:
        call_started = time.perf_counter()
        answer = await store.candidates(MODEL, DIM, TENANT, queries.tolist())
        milvus_ms.append(1000 * (time.perf_counter() - call_started))
        exact, _ = brute_force_top1(stored, owners, queries)
        milvus_hits += sum((c[0].person_id if c else None) == e for c, e in zip(answer, exact, strict=True))
        milvus_total += len(exact)
    await store.close()
    rate, limit = len(events) / seconds, len(events) / brute_seconds
    latency_ms = sorted(1000 * s for s in latencies)
    return [
        [
            f"{size:,}",
            "matcher (copy in memory)",
            f"{rate:,.0f}",
            f"{statistics.median(latency_ms):.0f} / {latency_ms[int(0.99 * (len(latency_ms) - 1))]:.0f}",
            f"{hits / total:.2f}",
            f"{limit:,.0f}",
            f"{rate / limit:.2f}",
            f"{1000 * cpu_seconds / len(events):.2f}",
            f"insert {insert_seconds:.0f} s, first load {load_seconds:.1f} s (outside the lease);"
            f" floored search agreed with exact on {agreed}/{total}",
        ],
        [
            f"{size:,}",
            "Milvus Lite FLAT search only",
            f"{1000 * BATCH / statistics.median(milvus_ms):,.0f}",
            f"{statistics.median(milvus_ms):.0f}",
            f"{milvus_hits / milvus_total:.2f}",
            f"{limit:,.0f}",
            f"{1000 * BATCH / statistics.median(milvus_ms) / limit:.2f}",
            "",
            f"{len(milvus_ms)} calls",
        ],
    ]


async def run() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        trust = load_or_create_trust(folder / "keys")
        admin = write_user_credentials(trust, folder / "users")[ADMIN_USER]
        url, nats_process = start_nats(folder / "nats", folder / "logs", free_port(), trust)
        rows: list[list[object]] = []
        try:
            connection = await nats.connect(url, user_credentials=str(admin))
            for size in SIZES:
                rows += await measure(folder, connection, size)
            await connection.close()
        finally:
            nats_process.stop()
    load_after = os.getloadavg()[0]
    body = (
        f"Load average of the machine (its 2 cores are shared) {load_before:.1f} at the start, {load_after:.1f} at"
        " the end: the brute-force limit column shows what numpy alone got meanwhile.\n\n"
        f"One tenant holding 10,000 or 100,000 vectors ({DIM}-d, Milvus Lite on a local file); {EVENTS:,} faces in"
        f" batches of {BATCH}, half returning persons (cosine about 0.9 to a stored vector), half new faces. The"
        " matcher searches its in-memory copy of the tenant (exact), loaded once from Milvus and kept current by"
        " the vector log; each batch also looks up and records decisions in NATS KV, takes and fences the tenant's"
        " lease, inserts the new persons' vectors into Milvus and appends the vector log. recall@1: the matcher's"
        " best person equals the best person of an exact numpy search over every row read back from Milvus after"
        " the run. The handler searches with a floor (threshold - 0.05: a hit below it changes no decision); it"
        " agrees with the exact search when it returns the exact best face for every face whose exact best"
        " reaches the floor and nobody for the others. brute-force limit: numpy's product and argmax alone over"
        " those rows, same batches, in"
        " matches/s; ratio = matches/s / limit. CPU ms per match: the bench process's CPU time (event loop, numpy's"
        " threads) over the run per face, which load changes least; NATS and the Milvus Lite server are other"
        " processes. Milvus Lite's own exact search on the same batches is the alternative the matcher does not"
        " take.\n\n"
        + table(
            [
                "stored vectors",
                "path",
                "matches/s",
                "ms per batch call (p50 / p99)",
                "recall@1",
                "brute-force limit /s",
                "ratio",
                "CPU ms per match",
                "notes",
            ],
            rows,
        )
        + "\n"
    )
    write_section("matcher", "Matcher: exact search at 10k and 100k vectors on Milvus Lite", body)


def main() -> None:
    asyncio.run(run())
