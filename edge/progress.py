"""Counters on the terminal, so whoever installs an edge sees it work without a Prometheus."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from edge.outbox import Outbox
from edge.pipeline import CameraPipeline
from edge.relay import OutboxRelay

INTERVAL_SECONDS = 2.0


@dataclass
class Progress:
    pipelines: Sequence[CameraPipeline]
    relay: OutboxRelay
    outbox: Outbox

    def line(self, state: str) -> str:
        frames = sum(p.counters.frames for p in self.pipelines)
        faces = sum(p.counters.faces for p in self.pipelines)
        tracks = sum(p.counters.tracks for p in self.pipelines)
        events = sum(p.counters.events for p in self.pipelines)
        staff = sum(p.counters.staff_filtered for p in self.pipelines)
        return (
            f"[edge {state}] frames={frames} faces={faces} tracks={tracks} events={events} staff={staff} "
            f"published={self.relay.published} duplicates={self.relay.duplicates} outbox={self.outbox.depth} "
            f"dropped={sum(self.outbox.dropped.values())}"
        )


async def report_progress(progress: Progress, stream: TextIO) -> None:
    while True:
        await asyncio.sleep(INTERVAL_SECONDS)
        print(progress.line("running"), file=stream, flush=True)
