"""Reporting benchmark (`python -m bench reporting`): reports over 10M visits, and sightings into visits.

An embedded PostgreSQL (as in `make dev`, default settings) gets reporting's migrations, then 10,000,000 visits
of 1,000,000 persons over 200 sites in 8 time zones, spread over the 12 months of 2025 (made by SQL in the
database: `INSERT ... SELECT` from `generate_series`, the quickest way to load; no NATS, no services). Each
person has a home site and visits another one time in ten. Then, through `VisitStore` as the API calls it:

- a site's month report by local day (the month's local dates in the site's zone), 60 random (site, month);
- the tenant-wide month report (every visit on its own site's local date) and the multi-site comparison;
- sightings into visits, sustained: 24,000 sightings of 6,000 of those persons in January 2026, partly out of
  order, through `handlers.record_visits` and the real store as the consumer runs them on a backlog (batches
  of 256, one after the other; published events are collected, not sent to NATS);
- the same through the running service: another 24,000 such sightings published to JetStream (an embedded
  nats-server), then `python -m services.reporting` started on the same database drains them through its
  `faces.matched` consumer and publishes its visit events, as in production; timed from its first ack to its
  last, with the CPU of the service, Postgres and nats-server.

`REVISIT_BENCH_REPORTING_VISITS` makes the data set smaller (persons are a tenth of the visits) for a quick run;
`make bench` runs it at the issue's scale, which takes minutes (loading time is printed).
"""

import asyncio
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import nats

from bench.report import table, write_section
from devstack.infra import ManagedProcess, free_port, spawn, start_nats, start_postgres
from devstack.nats_auth import ADMIN_USER, load_or_create_trust, write_user_credentials
from devstack.stack import Endpoints, load_or_create_keys, service_environment, wait_until_ready
from schemas import FaceMatched, PersonKind, subjects
from schemas.base import Event
from schemas.ids import new_event_id
from services.common.bus import declare_streams
from services.common.logging import configure_logging
from services.common.postgres import connect_postgres
from services.reporting import handlers
from services.reporting.adapters.postgres import ROLE, SCHEMA, VisitStore
from services.reporting.bootstrap import MIGRATIONS, STREAMS
from services.reporting.consumers import DURABLE
from services.reporting.domain.visits import VisitRules

TENANT = "bench"
VISITS = int(os.environ.get("REVISIT_BENCH_REPORTING_VISITS", "10000000"))
PERSONS = max(VISITS // 10, 1)
SITES = 200
ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
)
LOAD_CHUNK = 1_000_000
RULES = VisitRules(gap=timedelta(minutes=30), lookback=timedelta(days=90))
SIGHTING_PERSONS, SIGHTINGS_PER_PERSON, BATCH = 6_000, 4, 256
SITE_REPORTS, TENANT_REPORTS = 60, 12


def site_id(index: int) -> str:
    return f"site-{index:03d}"


def zone_of(index: int) -> ZoneInfo:
    return ZoneInfo(ZONES[index % len(ZONES)])


def person_id(index: int) -> uuid.UUID:
    """As the loader's SQL makes it: md5('p' || index)::uuid."""
    return uuid.UUID(hashlib.md5(f"p{index}".encode()).hexdigest())


LOAD_VISITS = """
INSERT INTO reporting.visits (tenant_id, visit_id, site_id, person_id, started_at, last_seen_at, sightings,
                              is_returning)
SELECT 'bench', md5('v' || i)::uuid,
       'site-' || lpad((CASE WHEN i % 10 = 0 THEN (p + i) % $3 ELSE p % $3 END + 1)::text, 3, '0'),
       md5('p' || p)::uuid, started, started + make_interval(secs => dwell), 1 + dwell / 300, i % 3 <> 0
FROM (SELECT i, (random() * ($4 - 1))::int AS p,
             timestamptz '2025-01-01 00:00:00+00' + random() * interval '365 days' AS started,
             (random() * random() * 7200)::int AS dwell
      FROM generate_series($1::bigint, $2::bigint) AS i) g
"""
"""Visits `$1`..`$2` (ids from their number), of random persons of `$4`, at their home site of `$3`, or (one
visit in ten) another one; dwell skewed short (a product of two uniforms), up to two hours; a third new. (Only
the reports read these: their sightings are not loaded.)"""


ROLLUP_PERSONS = ("tenant_day_persons", "tenant_month_persons", "site_month_persons", "site_day_persons")
"""The big rollup tables (one row per key and person): their keys are built after their rows, as the visits'."""


async def load(admin_dsn: str) -> dict[str, float]:
    """Load the visits and build their rollups as the schema owner; seconds taken by each step. The keys and
    indexes of the visits and of the rollups' persons tables are dropped while rows arrive and built again after
    (from their own definitions, sorting once instead of inserting into a B-tree row by row), as a bulk load
    does; the rollups are made by `rebuild_tenant_rollups`, set-based SQL over all the visits at once."""
    connection = await asyncpg.connect(admin_dsn)
    steps: dict[str, float] = {}
    started = time.perf_counter()
    try:
        await connection.execute("SET maintenance_work_mem = '1GB'")  # index builds sort in memory
        await connection.execute("SET temp_buffers = '1GB'")  # the rebuild's table of all visits stays in memory
        await connection.execute(
            "SELECT reporting.ensure_month_partitions(t, '2025-01-01', '2026-02-28') FROM unnest($1::text[]) t",
            ["sightings", "visits"],
        )
        indexes = await without_indexes(connection, "visits")
        for first in range(1, VISITS + 1, LOAD_CHUNK):
            last = min(first + LOAD_CHUNK - 1, VISITS)
            await connection.execute(LOAD_VISITS, first, last, SITES, PERSONS)
            print(f"  loaded {last:,} visits in {time.perf_counter() - started:.0f} s", flush=True)
        steps["rows"] = time.perf_counter() - started
        for statement in indexes:
            await connection.execute(statement)
        steps["indexes"] = time.perf_counter() - started - steps["rows"]
        print(f"  indexed in {time.perf_counter() - started:.0f} s", flush=True)
        await connection.executemany(
            "INSERT INTO reporting.site_zones (tenant_id, site_id, zone) VALUES ($1, $2, $3)",
            [(TENANT, site_id(i), zone_of(i).key) for i in range(SITES)],
        )
        rollup_keys = [statement for table in ROLLUP_PERSONS for statement in await without_indexes(connection, table)]
        async with connection.transaction():
            await connection.execute("SELECT reporting.rebuild_tenant_rollups($1)", TENANT)
        for statement in rollup_keys:
            await connection.execute(statement)
        steps["rollups"] = time.perf_counter() - started - steps["rows"] - steps["indexes"]
        print(f"  rolled up in {time.perf_counter() - started:.0f} s", flush=True)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    steps["total"] = time.perf_counter() - started
    return steps


async def without_indexes(connection: asyncpg.Connection, table: str) -> list[str]:
    """Drop the primary key and indexes of `table`; the statements that make them again."""
    key = await connection.fetchrow(
        "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
        " WHERE conrelid = $1::regclass AND contype = 'p'",
        f"reporting.{table}",
    )
    assert key is not None, f"reporting.{table} has a primary key"
    indexes = await connection.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'reporting' AND tablename = $1"
        " AND indexname <> $2",
        table,
        key["conname"],
    )
    await connection.execute(f'ALTER TABLE reporting.{table} DROP CONSTRAINT "{key["conname"]}"')
    for index in indexes:
        await connection.execute(f'DROP INDEX reporting."{index["indexname"]}"')
    return [
        f'ALTER TABLE reporting.{table} ADD CONSTRAINT "{key["conname"]}" {key["definition"]}',
        *(index["indexdef"].replace(" ON ONLY ", " ON ", 1) for index in indexes),  # ONLY: no partition index
    ]


def local_month(year: int, month: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    nxt = (year + month // 12, month % 12 + 1)
    return datetime(year, month, 1, tzinfo=zone), datetime(*nxt, 1, tzinfo=zone)


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(int(len(samples) * 0.95) - 1, 0)]


async def time_site_reports(store: VisitStore, rng: random.Random) -> list[float]:
    samples = []
    for _ in range(SITE_REPORTS):
        index, month = rng.randrange(SITES), rng.randint(1, 12)
        zone = zone_of(index)
        start, end = local_month(2025, month, zone)
        began = time.perf_counter()
        await store.visitor_report(TENANT, site_id(index), start, end, "day", zone)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


async def time_tenant_reports(store: VisitStore, rng: random.Random, comparison: bool) -> list[float]:
    zones = {site_id(i): zone_of(i) for i in range(SITES)}
    samples = []
    for _ in range(TENANT_REPORTS):
        month = rng.randint(1, 12)
        first, end = date(2025, month, 1), date(2025 + month // 12, month % 12 + 1, 1)
        began = time.perf_counter()
        if comparison:
            await store.site_comparison(TENANT, first, end, zones)
        else:
            await store.tenant_report(TENANT, first, end, zones)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def sightings(rng: random.Random) -> list[FaceMatched]:
    """Four sightings of each of 6,000 loaded persons at its home site in January 2026: two 10 minutes apart
    (one visit), two on other days; delivered a little out of order, as replicas and replays do."""
    events = []
    for k in rng.sample(range(PERSONS), min(SIGHTING_PERSONS, PERSONS)):
        day = datetime(2026, 1, 1, 8, tzinfo=UTC) + timedelta(days=rng.randrange(20), minutes=rng.randrange(600))
        moments = [day, day + timedelta(minutes=10), day + timedelta(days=3), day + timedelta(days=7)]
        for at in moments[:SIGHTINGS_PER_PERSON]:
            events.append(matched(person_id(k), site_id(k % SITES), at))
    events.sort(key=lambda e: e.captured_at + timedelta(minutes=rng.randrange(-60, 60)))
    return events


def matched(person: uuid.UUID, site: str, at: datetime) -> FaceMatched:
    return FaceMatched(
        tenant_id=TENANT,
        source_event_id=new_event_id(),
        site_id=site,
        camera_id="entrance",
        captured_at=at,
        person_id=person,
        person_kind=PersonKind.CUSTOMER,
        is_new_person=False,
        similarity=0.7,
        embedding_model="bench-model@1",
    )


async def time_sightings(store: VisitStore, events: list[FaceMatched], postgres_pid: int) -> tuple[float, float, int]:
    """Sightings per second through the handler as the consumer runs it on a backlog (batches of 256 as its fetches
    return them, one after the other); per CPU second of this process and Postgres together (the machine is
    shared: this says what its 2 cores would do alone); and how many visit events were announced."""
    announced: list[Event] = []

    async def publish(subject: str, event: Event) -> None:
        announced.append(event)

    began, cpu = time.perf_counter(), process_cpu_seconds(postgres_pid)
    for start in range(0, len(events), BATCH):
        await handlers.record_visits(events[start : start + BATCH], store, RULES, publish)
    elapsed, used = time.perf_counter() - began, process_cpu_seconds(postgres_pid) - cpu
    return len(events) / elapsed, len(events) / used, len(announced)


def process_cpu_seconds(postgres_pid: int) -> float:
    """CPU seconds used so far by this process and by the Postgres server (its postmaster and every child)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended meanwhile
        pid, parent = int(stat.parent.name), int(fields[1])
        if postgres_pid in (pid, parent):
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


@dataclass(frozen=True)
class ServiceRun:
    rate: float
    """Sightings per second from the consumer's first ack to its last."""
    per_cpu: float
    """Sightings per CPU second of the service, Postgres and nats-server together."""
    service_cpu: float
    postgres_cpu: float
    nats_cpu: float
    load: float


def time_service(folder: Path, postgres_dsn: str, postgres_pid: int, events: list[FaceMatched]) -> ServiceRun:
    """Publish `events` to JetStream, start the reporting service on the loaded database and time how fast its
    `faces.matched` consumer drains them (its visit events go to JetStream too, as in production)."""
    trust = load_or_create_trust(folder / "keys" / "nats")
    users = write_user_credentials(trust, folder / "nats-users")
    url, nats_process = start_nats(folder / "nats", folder / "logs", free_port(), trust)
    keys = load_or_create_keys(folder / "keys")
    port = free_port()
    environment = service_environment("reporting", Endpoints(url, postgres_dsn, "", "", users), keys, port)
    server: ManagedProcess | None = None
    try:
        asyncio.run(publish_sightings(url, users[ADMIN_USER], events))
        server = spawn(
            "reporting",
            [sys.executable, "-m", "services.reporting"],
            folder / "logs",
            {**environment, "PYTHONUNBUFFERED": "1", "REVISIT_LOG_LEVEL": "WARNING"},
        )
        wait_until_ready([server], {"reporting": port})
        return asyncio.run(drain(url, users[ADMIN_USER], len(events), server, postgres_pid, nats_process))
    finally:
        if server is not None:
            server.stop()
        nats_process.stop()


async def publish_sightings(url: str, credentials: Path, events: list[FaceMatched]) -> None:
    """The sightings into the faces stream (declared as the services declare it), a few hundred in flight."""
    connection = await nats.connect(url, user_credentials=str(credentials))
    try:
        await declare_streams(connection, STREAMS)
        js = connection.jetstream()
        for start in range(0, len(events), 500):
            await asyncio.gather(
                *(
                    js.publish(
                        subjects.face_matched(event.tenant_id, event.site_id),
                        event.to_json_bytes(),
                        headers={"Nats-Msg-Id": str(event.event_id)},
                    )
                    for event in events[start : start + 500]
                )
            )
    finally:
        await connection.close()


async def drain(
    url: str, credentials: Path, count: int, server: ManagedProcess, postgres_pid: int, nats_process: ManagedProcess
) -> ServiceRun:
    """Poll the service's durable consumer until every sighting is acked; the rate from its first ack."""
    connection = await nats.connect(url, user_credentials=str(credentials))
    js = connection.jetstream()
    try:
        started = cpu = None
        while True:
            info = await js.consumer_info(subjects.FACES_STREAM.name, DURABLE)
            acked = info.ack_floor.stream_seq if info.ack_floor else 0
            if started is None and acked > 0:
                started, cpu = time.perf_counter(), service_cpu(server, postgres_pid, nats_process)
            if info.num_pending == 0 and info.num_ack_pending == 0 and acked > 0:
                break
            await asyncio.sleep(0.05)
        assert started is not None and cpu is not None
        elapsed = time.perf_counter() - started
        now = service_cpu(server, postgres_pid, nats_process)
        used = [after - before for after, before in zip(now, cpu, strict=True)]
    finally:
        await connection.close()
    service, postgres, nats_server = used
    return ServiceRun(count / elapsed, count / sum(used), service, postgres, nats_server, os.getloadavg()[0])


def service_cpu(server: ManagedProcess, postgres_pid: int, nats_process: ManagedProcess) -> tuple[float, ...]:
    """CPU seconds so far of the service, of Postgres (its postmaster and children) and of nats-server."""
    return (
        tree_cpu_seconds(server.process.pid, children=False),
        tree_cpu_seconds(postgres_pid, children=True),
        tree_cpu_seconds(nats_process.process.pid, children=False),
    )


def tree_cpu_seconds(pid: int, children: bool) -> float:
    ticks, total = os.sysconf("SC_CLK_TCK"), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended meanwhile
        if int(stat.parent.name) == pid or (children and int(fields[1]) == pid):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def measure(admin_dsn: str, postgres_pid: int) -> dict[str, object]:
    pool = await connect_postgres(admin_dsn, SCHEMA, ROLE, MIGRATIONS, 30, max_size=4)  # migrates
    try:
        loading = await load(admin_dsn)
        load_after_loading = os.getloadavg()[0]
        store, rng = VisitStore(pool), random.Random(9)
        await time_site_reports(store, rng)  # warm the cache as a running service's would be
        site = await time_site_reports(store, rng)
        tenant = await time_tenant_reports(store, rng, comparison=False)
        comparison = await time_tenant_reports(store, rng, comparison=True)
        reads_load = os.getloadavg()[0]
        rate, per_cpu, announced = await time_sightings(store, sightings(rng), postgres_pid)
        load_average = os.getloadavg()[0]
        through_service = sightings(rng)
    finally:
        await pool.close()
    return {
        "loading": loading,
        "load_after_loading": load_after_loading,
        "reads_load": reads_load,
        "site": site,
        "tenant": tenant,
        "comparison": comparison,
        "rate": rate,
        "per_cpu": per_cpu,
        "load": load_average,
        "announced": announced,
        "through_service": through_service,
    }


EARLIER = (
    "Before the site-day rollups (migration 009) a site's month report read the month's visits: p95 443 ms at 10M"
    " (load 8-14), and the comparison fetched every site's dwell per minute and took its medians in Python: p95"
    " 712 ms. Loading took 2,678 s then, 1,956 s of it the rollups inserted into their keyed tables. Before the"
    " batch consumer and the seven-statement batch, the same sightings through the running service (FastStream's"
    " consumer, 1,000,000 visits, load 1-3) went at 1,029 /s, 1,281 /CPU-s (service 12.9 s, Postgres 4.8 s,"
    " nats-server 1.1 s); after, at 1,000,000 visits and load 1.0: 4,051 /s, 3,620 /CPU-s (service 3.3 s,"
    " Postgres 2.7 s, nats-server 0.6 s)."
)


def main() -> None:
    configure_logging("reporting", "WARNING")  # as a service logs; its per-batch info lines are not measured
    with tempfile.TemporaryDirectory(prefix="bench-reporting-") as folder:
        postgres = start_postgres(Path(folder) / "postgres", database="bench")
        try:
            pid = int((Path(folder) / "postgres" / "postmaster.pid").read_text().split()[0])
            figures = asyncio.run(measure(postgres.dsn, pid))
            events = figures["through_service"]
            assert isinstance(events, list)
            service = time_service(Path(folder), postgres.dsn, pid, events)
        finally:
            postgres.stop()
    site, tenant, comparison = figures["site"], figures["tenant"], figures["comparison"]
    assert isinstance(site, list) and isinstance(tenant, list) and isinstance(comparison, list)
    loading = figures["loading"]
    assert isinstance(loading, dict)
    rows: list[list[object]] = [
        [
            "site month report by local day, rollups (p95 / median)",
            f"{p95(site):.1f} / {statistics.median(site):.1f} ms (load average {figures['reads_load']:.1f})",
            "≤ 50 ms",
        ],
        [
            "tenant-wide month by local date (p95 / median)",
            f"{p95(tenant):.0f} / {statistics.median(tenant):.0f} ms",
            "≤ 200 ms",
        ],
        [
            "multi-site comparison, a month (p95 / median)",
            f"{p95(comparison):.0f} / {statistics.median(comparison):.0f} ms",
            "< 200 ms",
        ],
        [
            "sightings into visits, sustained",
            f"{figures['rate']:,.0f} /s (load average {figures['load']:.1f})",
            "≥ 2,000 /s",
        ],
        [
            "the same per CPU second (this process + Postgres)",
            f"{figures['per_cpu']:,.0f} /CPU-s",
            "",
        ],
        [
            "sightings into visits through the running service (JetStream in and out)",
            f"{service.rate:,.0f} /s (load average {service.load:.1f})",
            "≥ 2,000 /s",
        ],
        [
            "the same per CPU second (service + Postgres + nats-server)",
            f"{service.per_cpu:,.0f} /CPU-s (service {service.service_cpu:.1f} s, Postgres"
            f" {service.postgres_cpu:.1f} s, nats-server {service.nats_cpu:.1f} s)",
            "",
        ],
    ]
    body = (
        f"{VISITS:,} visits of {PERSONS:,} persons over {SITES} sites in {len(ZONES)} zones (2025), loaded in"
        f" {loading['total']:,.0f} s (rows {loading['rows']:,.0f} s, indexes {loading['indexes']:,.0f} s, rollups"
        f" {loading['rollups']:,.0f} s; load average {figures['load_after_loading']:.1f} then);"
        f" {SITE_REPORTS} site reports, {TENANT_REPORTS} tenant reports;"
        f" {SIGHTING_PERSONS * SIGHTINGS_PER_PERSON:,} sightings in batches of {BATCH}"
        f" ({figures['announced']:,} visit events announced). Embedded PostgreSQL 16, default settings.\n\n"
        + table(["what", "measured", "target"], rows)
        + "\n\n"
        + EARLIER
    )
    write_section("reporting", f"Reporting at {VISITS:,} visits", body)


if __name__ == "__main__":
    main()
