"""`make chaos` (`python -m bench.chaos`): faults while faces flow, then the counts must equal the truth exactly.

The whole embedded stack runs as in `make dev` (bench/pipeline_stack.py). An online edge publishes its events at
a steady pace while, at random instants, every service is killed with kill -9 (its whole process group, as a
container is) several times and restarted, NATS is killed and restarted on its data, and Postgres is stopped and
started again. An offline edge holds its share of the events for `--offline-seconds`, then replays its outbox:
its own events and the last ones the online edge had sent (an outbox that lost its acknowledgements), so
duplicates arrive long after JetStream's duplicate window. It passes when reporting's visits and unique
visitors equal the truth, identity holds exactly one person per person, no consumer has a backlog left and
nothing was dead-lettered. The report goes to docs/BENCHMARKS.md ("Chaos")."""

import argparse
import asyncio
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.errors import NoRespondersError, TimeoutError

from bench.bench_pipeline import consumer_backlog
from bench.pipeline_stack import PipelineStack, Workload, admin_credentials, bench_model_id, new_tenant, running_stack
from bench.report import table, write_section
from devstack.stack import SERVICE_NAMES
from schemas import FaceDetected, subjects

OFFLINE_SHARE = 10
"""Every tenth event is the offline edge's."""
REPLAYED_DUPLICATES = 500
REPORTED_TOTALS = ("visits", "unique_visitors", "returning_visits", "unidentified_sightings")
SETTLED_SECONDS = 180.0
"""Counts unchanged this long, with no consumer backlog, end the wait short of the truth: the run failed."""
LOGGED_EVENTS = ("dependency_unavailable_waiting", "handler_failed_will_retry", "dead_lettered")


@dataclass
class FaultLog:
    started: float = field(default_factory=time.monotonic)
    entries: list[tuple[float, str]] = field(default_factory=list)

    def record(self, what: str) -> None:
        self.entries.append((time.monotonic() - self.started, what))
        print(f"[chaos {self.entries[-1][0]:7.1f} s] {what}", flush=True)


async def publish_resilient(url: str, credentials: Path, events: list[FaceDetected], rate: float | None) -> int:
    """Publish as an edge's outbox relay does: each event until JetStream acknowledges it (same `Nats-Msg-Id`
    every try), through NATS restarts. Returns how many tries failed and were repeated."""

    async def quiet(error: Exception) -> None:  # NATS restarting is the point here: retried below, not logged
        pass

    connection = await nats.connect(
        url, user_credentials=str(credentials), max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=quiet
    )
    js = connection.jetstream()
    retries, started = 0, time.monotonic()
    for index, event in enumerate(events):
        if rate is not None and (delay := started + index / rate - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        subject = subjects.face_detected(event.tenant_id, event.site_id, event.camera_id)
        while True:
            try:
                await js.publish(
                    subject, event.to_json_bytes(), headers={"Nats-Msg-Id": str(event.event_id)}, timeout=5
                )
                break
            except (
                TimeoutError,
                NoRespondersError,
                nats.errors.ConnectionClosedError,
                nats.errors.StaleConnectionError,
            ):
                retries += 1
                await asyncio.sleep(0.5)
    await connection.close()
    return retries


def kill_group(pid: int) -> None:
    """kill -9 of a process and everything it started (Milvus Lite's server beside the matcher), as a container dies."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def inject_faults(stack: PipelineStack, duration: float, kills: int, log: FaultLog, stop: threading.Event) -> None:
    """Every service killed `kills` times, NATS and Postgres restarted once, at random instants within `duration`."""
    rng = random.Random(11)
    plan = [(rng.uniform(0.05, 0.9) * duration, "kill", name) for name in SERVICE_NAMES for _ in range(kills)]
    plan += [(rng.uniform(0.2, 0.4) * duration, "nats", ""), (rng.uniform(0.5, 0.7) * duration, "postgres", "")]
    for at, kind, name in sorted(plan):
        if stop.wait(max(at - (time.monotonic() - log.started), 0)):
            return
        if kind == "kill":
            kill_group(stack.services[name].process.pid)
            stack.services[name].process.wait()
            stack.restart_service(name)
            log.record(f"kill -9 {name}, restarted")
        elif kind == "nats":
            assert stack.nats is not None
            kill_group(stack.nats.process.pid)
            stack.restart_nats()
            log.record("kill -9 nats-server, restarted on its data")
        else:
            stack.restart_postgres()
            log.record("postgres stopped (fast shutdown) and started again")


async def dead_letters(url: str, credentials: Path) -> int:
    connection = await nats.connect(url, user_credentials=str(credentials))
    info = await connection.jetstream().stream_info(subjects.DEADLETTER_STREAM.name)
    await connection.close()
    return int(info.state.messages)


def wait_for_truth(stack: PipelineStack, workload: Workload, credentials: Path, timeout: float) -> dict[str, int]:
    """Reporting's totals once its visits reach the truth, or once they stopped changing for `SETTLED_SECONDS`
    with no consumer holding a backlog (the run fell short: nothing more is coming)."""
    assert stack.endpoints is not None
    deadline, totals = time.monotonic() + timeout, dict[str, int]()
    last, changed_at, reported_at = totals, time.monotonic(), 0.0
    while time.monotonic() < deadline:
        try:
            totals = stack.totals(workload)
        except Exception as error:  # a service restarting answers nothing for a moment
            print(f"[chaos] reporting not answering: {error!r}", flush=True)
        if totals.get("visits", 0) >= workload.events:
            time.sleep(5)  # anything counted twice arrives now
            return stack.totals(workload)
        now = time.monotonic()
        if totals != last:
            last, changed_at = totals, now
        elif now - changed_at > SETTLED_SECONDS:
            backlog = asyncio.run(consumer_backlog(stack.endpoints.nats_url, credentials))
            if not backlog:
                return totals
        if now - reported_at > 30:
            print(f"[chaos] visits so far {totals.get('visits', 0):,} of {workload.events:,}", flush=True)
            reported_at = now
        time.sleep(2)
    return totals


def log_counts(logs: Path) -> dict[str, int]:
    """How often the services logged waiting out an outage, retrying a failing message or dead-lettering one."""
    counts = dict.fromkeys(LOGGED_EVENTS, 0)
    for path in logs.glob("*.log"):
        text = path.read_text(errors="replace")
        for name in LOGGED_EVENTS:
            counts[name] += text.count(f'"{name}"')
    return counts


def run(events: int, offline_seconds: float, kills: int, rate: float) -> tuple[bool, str]:
    visits = 4
    workload = Workload(new_tenant("chaos"), events // visits, visits, True, bench_model_id(), seed=3)
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    with running_stack(folder) as stack:
        assert stack.endpoints is not None
        url, credentials = stack.endpoints.nats_url, admin_credentials(stack)
        stack.register(workload.tenant, workload.model)
        stack.wait_registered(workload.tenant)
        all_events = workload.build()
        offline = all_events[OFFLINE_SHARE - 1 :: OFFLINE_SHARE]
        online = [event for index, event in enumerate(all_events) if index % OFFLINE_SHARE != OFFLINE_SHARE - 1]
        log, stop = FaultLog(), threading.Event()
        publish_seconds = len(online) / rate
        faults = threading.Thread(
            target=inject_faults, args=(stack, max(publish_seconds, offline_seconds), kills, log, stop), daemon=True
        )
        faults.start()
        log.record(
            f"online edge publishing {len(online):,} events at {rate:.0f}/s; offline edge holds {len(offline):,}"
        )
        retries = asyncio.run(publish_resilient(url, credentials, online, rate))
        log.record(f"online edge done ({retries} publish tries repeated)")
        wait = offline_seconds - (time.monotonic() - log.started)
        if wait > 0:
            time.sleep(wait)
        replay = offline + online[-REPLAYED_DUPLICATES:]
        log.record(f"offline edge back after {offline_seconds:.0f} s: replaying {len(replay):,} events "
                   f"({REPLAYED_DUPLICATES} already delivered)")  # fmt: skip
        retries += asyncio.run(publish_resilient(url, credentials, replay, rate * 4))
        faults.join()
        stop.set()
        log.record("all faults done; waiting for the counts")
        stack.wait_ready()
        totals = wait_for_truth(stack, workload, credentials, timeout=max(1800.0, events / 5))
        persons = stack.persons(workload.tenant)
        time.sleep(5)
        backlog = asyncio.run(consumer_backlog(url, credentials))
        dead = asyncio.run(dead_letters(url, credentials))
        counted = {key: totals.get(key) for key in REPORTED_TOTALS}
        log.record(f"totals {counted}, persons {persons}, backlog {backlog or 'none'}, dead letters {dead}")
        elapsed = time.monotonic() - log.started
        logged = log_counts(stack.logs)
    checks = [
        ["visits", f"{workload.events:,}", f"{totals.get('visits', 0):,}", totals.get("visits") == workload.events],
        [
            "unique visitors",
            f"{workload.people:,}",
            f"{totals.get('unique_visitors', 0):,}",
            totals.get("unique_visitors") == workload.people,
        ],
        ["persons in identity (duplicates)", f"{workload.people:,}", f"{persons:,}", persons == workload.people],
        [
            "consumers with a backlog left",
            "none",
            ", ".join(f"{k} {v}" for k, v in backlog.items()) or "none",
            not backlog,
        ],
        ["dead-lettered messages", "0", str(dead), dead == 0],
    ]
    passed = all(bool(row[3]) for row in checks)
    if passed:  # the services' logs are kept (small), the data goes
        for part in folder.iterdir():
            if part.is_dir() and part.name != "logs":
                shutil.rmtree(part, ignore_errors=True)
            elif part.is_file():
                part.unlink()
    print(f"[chaos] {'PASSED' if passed else 'FAILED'}: logs in {folder / 'logs'}", flush=True)
    faults_text = "\n".join(f"- {at:.0f} s: {what}" for at, what in log.entries)
    body = "\n\n".join(
        [
            f"**{'PASSED' if passed else 'FAILED'}** in {elapsed / 60:.1f} min: {workload.events:,} events "
            f"({workload.people:,} people x {visits} visits, crops on) at {rate:.0f} events/s; each service killed "
            f"with kill -9 {kills} times; NATS and Postgres restarted; an edge offline for {offline_seconds:.0f} s "
            f"holding {len(offline):,} events, then replaying them with {REPLAYED_DUPLICATES} already delivered; "
            f"{retries} publish tries repeated by the edges.",
            table(["check", "truth", "measured", "ok"], [[*row[:3], "yes" if row[3] else "**no**"] for row in checks]),
            "What happened, in order:\n\n" + faults_text,
            "Logged by the services meanwhile: "
            + ", ".join(f"`{name}` {count:,} times" for name, count in logged.items())
            + " (a `dependency_unavailable_waiting` line is a message's first try, or every 20th, of waiting out an "
            "unreachable NATS, Postgres or S3 in place).",
            f"Run: `make chaos` (CHAOS_EVENTS={events}, CHAOS_OFFLINE_SECONDS={offline_seconds:.0f}, "
            f"CHAOS_KILLS={kills}, CHAOS_RATE={rate:.0f}). Load average at the end: "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores, shared).",
        ]
    )
    return passed, body


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("CHAOS_EVENTS", "20000")))
    parser.add_argument("--offline-seconds", type=float, default=float(os.environ.get("CHAOS_OFFLINE_SECONDS", "600")))
    parser.add_argument("--kills", type=int, default=int(os.environ.get("CHAOS_KILLS", "3")), help="per service")
    parser.add_argument("--rate", type=float, default=float(os.environ.get("CHAOS_RATE", "40")), help="events/s")
    args = parser.parse_args()
    passed, body = run(args.events, args.offline_seconds, args.kills, args.rate)
    write_section("chaos", "Chaos: kill -9, NATS and Postgres restarts, an edge offline (make chaos)", body)
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
