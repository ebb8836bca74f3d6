"""End-to-end pipeline benchmark (`python -m bench pipeline`): FaceDetected events published as an edge does
until every visit is visible in the reporting API, on the whole embedded stack (`bench/pipeline_stack.py`).

- throughput, crops on and off: a burst of `people x visits` events (one sighting per visit), timed from the
  first publish until reporting's totals equal the truth exactly (visits and unique visitors);
- latency from publish to visit visible, p50 and p99, at 50% and 90% of the measured crops-on rate (the i-th
  visit counted is taken as the i-th event published: the order is nearly kept, and the error is one poll);
- each process's CPU (share of one core over the burst) and resident memory, and the consumers' backlog half
  way through the burst: the stage with the backlog is the bottleneck.

Sizes: BENCH_PIPELINE_PEOPLE (default 1000) x BENCH_PIPELINE_VISITS (4); BENCH_PIPELINE_LATENCY_SECONDS (20).
"""

import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import nats

from bench.pipeline_stack import (
    PipelineStack,
    Workload,
    admin_credentials,
    bench_model_id,
    new_tenant,
    publish,
    running_stack,
)
from bench.report import table, write_section

PEOPLE = int(os.environ.get("BENCH_PIPELINE_PEOPLE", "1000"))
VISITS = int(os.environ.get("BENCH_PIPELINE_VISITS", "4"))
LATENCY_SECONDS = float(os.environ.get("BENCH_PIPELINE_LATENCY_SECONDS", "20"))
STALL_SECONDS = 180.0


class ExactCountsNotReached(RuntimeError):
    """Reporting's totals stopped short of (or went past) the truth."""


def wait_for_truth(stack: PipelineStack, workload: Workload, poll: float = 0.5) -> list[tuple[float, int]]:
    """Poll the reporting API until its visits equal the workload's; returns (monotonic time, visits) per poll.
    Raises if the count stalls for STALL_SECONDS or the totals are not exact."""
    seen: list[tuple[float, int]] = []
    last_change = time.monotonic()
    while True:
        totals = stack.totals(workload)
        now = time.monotonic()
        if not seen or totals["visits"] != seen[-1][1]:
            last_change = now
        seen.append((now, totals["visits"]))
        if totals["visits"] >= workload.events:
            time.sleep(2 * poll)  # anything past the truth arrives now
            totals = stack.totals(workload)
            if (totals["visits"], totals["unique_visitors"]) != (workload.events, workload.people):
                raise ExactCountsNotReached(
                    f"totals {totals}, truth {workload.events} visits, {workload.people} people"
                )
            return seen
        if now - last_change > STALL_SECONDS:
            raise ExactCountsNotReached(f"stalled at {totals} of {workload.events} visits")
        time.sleep(poll)


async def consumer_backlog(url: str, credentials: Path) -> dict[str, int]:
    """Messages each durable consumer has yet to process (pending + unacknowledged), by consumer name."""
    connection = await nats.connect(url, user_credentials=str(credentials))
    js = connection.jetstream()
    backlog: dict[str, int] = {}
    for stream in await js.streams_info():
        for consumer in await js.consumers_info(stream.config.name or ""):
            if consumer.config.durable_name:
                backlog[consumer.name] = (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
    await connection.close()
    return {name: count for name, count in backlog.items() if count}


def throughput(stack: PipelineStack, crops: bool) -> dict[str, object]:
    assert stack.endpoints is not None
    nats_url = stack.endpoints.nats_url
    workload = Workload(new_tenant("crops" if crops else "nocrops"), PEOPLE, VISITS, crops, bench_model_id())
    stack.register(workload.tenant, workload.model)
    stack.wait_registered(workload.tenant)
    events = workload.build()
    before, started = stack.samples(), time.monotonic()
    backlogs: list[tuple[float, dict[str, int]]] = []
    finished = threading.Event()

    def sample_backlogs() -> None:
        while not finished.wait(1.0):
            backlog = asyncio.run(consumer_backlog(nats_url, admin_credentials(stack)))
            backlogs.append((time.monotonic(), backlog))

    probe = threading.Thread(target=sample_backlogs, daemon=True)
    probe.start()
    sent_at = asyncio.run(publish(stack.endpoints.nats_url, admin_credentials(stack), events))
    published = time.monotonic()
    polls = wait_for_truth(stack, workload)
    done = polls[-1][0]
    after = stack.samples()
    finished.set()
    probe.join()
    elapsed = done - sent_at[0]
    usage = {  # share of one core over the burst, CPU milliseconds per event, resident memory at the end
        name: (
            100 * (after[name].cpu_seconds - before[name].cpu_seconds) / (done - started),
            1000 * (after[name].cpu_seconds - before[name].cpu_seconds) / workload.events,
            after[name].rss_bytes,
        )
        for name in after
        if name in before
    }
    return {
        "workload": workload,
        "rate": workload.events / elapsed,
        "elapsed": elapsed,
        "publish_rate": workload.events / (published - sent_at[0]),
        "usage": usage,
        "stages": stage_drains(backlogs, sent_at[0]),
        "persons": stack.persons(workload.tenant),
    }


def stage_drains(backlogs: list[tuple[float, dict[str, int]]], first_publish: float) -> dict[str, tuple[int, float]]:
    """Per consumer: its peak backlog and when it last had one (seconds after the first publish). The stage that
    drains last while its input is complete is the one limiting the rate."""
    stages: dict[str, tuple[int, float]] = {}
    for moment, backlog in backlogs:
        for name, count in backlog.items():
            peak = max(stages.get(name, (0, 0.0))[0], count)
            stages[name] = (peak, moment - first_publish)
    return stages


def latency(stack: PipelineStack, rate: float) -> tuple[float, float, int]:
    """p50 and p99 seconds from publish to visit visible at `rate` events/s, and the events sent."""
    assert stack.endpoints is not None
    people = max(int(rate * LATENCY_SECONDS / 2), 1)
    workload = Workload(new_tenant("latency"), people, 2, True, bench_model_id(), seed=int(rate))
    stack.register(workload.tenant, workload.model)
    stack.wait_registered(workload.tenant)
    events = workload.build()
    polls: list[tuple[float, int]] = []
    publishing = threading.Thread(
        target=lambda: polls.extend(wait_for_truth(stack, workload, poll=0.1)), name="poll", daemon=True
    )
    publishing.start()
    sent_at = asyncio.run(publish(stack.endpoints.nats_url, admin_credentials(stack), events, rate=rate))
    publishing.join()
    delays, poll_index = [], 0
    for index, sent in enumerate(sent_at, start=1):
        while polls[poll_index][1] < index:
            poll_index += 1
        delays.append(max(polls[poll_index][0] - sent, 0.0))
    quantiles = statistics.quantiles(delays, n=100)
    return statistics.median(delays), quantiles[98], len(events)


def stages_text(stages: dict[str, tuple[int, float]]) -> str:
    ordered = sorted(stages.items(), key=lambda item: -item[1][1])
    return ", ".join(f"{name} peak {peak:,}, drained at {drained:.0f} s" for name, (peak, drained) in ordered) or "none"


def usage_rows(crops_on: dict[str, object], crops_off: dict[str, object]) -> list[list[object]]:
    on, off = crops_on["usage"], crops_off["usage"]
    assert isinstance(on, dict) and isinstance(off, dict)
    return [
        [
            name,
            f"{on[name][0]:.0f}% ({on[name][1]:.2f} ms/event)",
            f"{off[name][0]:.0f}% ({off[name][1]:.2f} ms/event)",
            f"{max(on[name][2], off[name][2]) / 2**20:.0f} MiB",
        ]
        for name in sorted(on, key=lambda n: -on[n][1])
    ]


def main() -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as folder, running_stack(Path(folder)) as stack:
        crops_on = throughput(stack, crops=True)
        crops_off = throughput(stack, crops=False)
        sustained = float(crops_on["rate"])  # type: ignore[arg-type]
        latencies = [(share, *latency(stack, share * sustained)) for share in (0.5, 0.9)]
    load_after = os.getloadavg()
    ceilings = []
    for label, run in (("crops on", crops_on), ("crops off", crops_off)):
        usage = run["usage"]
        assert isinstance(usage, dict)
        total = sum(cpu_per_event for _, cpu_per_event, _ in usage.values())
        ceilings.append(f"{label}: {total:.1f} ms of CPU per event in all, a ceiling of {2000 / total:.0f} events/s")
    rows: list[list[object]] = []
    for label, run in (("crops on", crops_on), ("crops off (privacy mode)", crops_off)):
        workload = run["workload"]
        assert isinstance(workload, Workload)
        rows.append(
            [
                label,
                f"{workload.events:,} events ({workload.people:,} people x {workload.visits} visits)",
                f"**{run['rate']:.0f} events/s** ({run['elapsed']:.1f} s)",
                f"{run['publish_rate']:.0f}/s",
                f"exact ({workload.events:,} visits, {workload.people:,} unique); "
                f"persons in identity: {run['persons']:,}",
                stages_text(run["stages"]),  # type: ignore[arg-type]
            ]
        )
    body = "\n\n".join(
        [
            table(
                [
                    "run",
                    "events",
                    "end to end (publish → visit in reporting)",
                    "published at",
                    "counts",
                    "backlog per consumer (sampled each second)",
                ],
                rows,
            ),
            table(
                ["offered rate", "events", "latency p50", "latency p99"],
                [
                    [f"{share:.0%} of {sustained:.0f}/s = {share * sustained:.0f}/s", n, f"{p50:.2f} s", f"{p99:.2f} s"]
                    for share, p50, p99, n in latencies
                ],
            ),
            table(
                ["process", "CPU crops on: % of one core (CPU per event)", "CPU crops off", "RSS (max)"],
                usage_rows(crops_on, crops_off),
            ),
            "Whole pipeline, whatever the load: " + "; ".join(ceilings) + " on 2 idle cores (1,000 events/s needs "
            "2 ms).",
            f"Load average (1, 5, 15 min) before: {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}, "
            f"after: {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f} (2 cores; other work on the machine "
            "shows here; CPU per event is the figure that load changes least). The consumer that drains last "
            "(its backlog peaking near the whole burst) is the stage "
            "that limits the rate. Re-run alone: `python -m bench pipeline` "
            "(BENCH_PIPELINE_PEOPLE, BENCH_PIPELINE_VISITS).",
        ]
    )
    write_section("pipeline", "End-to-end pipeline: publish → visit visible in reporting", body)
