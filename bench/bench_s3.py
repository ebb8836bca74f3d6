"""Embedded S3 benchmark (`python -m bench s3`): puts/s of the dev S3 server (devstack/s3_server.py) and the CPU
each put costs the server and the client, through ingest's own `CropStore.put_crop` (SigV4-signed aiohttp PUT)
and through aioboto3's `put_object` (what every other S3 call of the services uses).

The other embedded S3 servers the registries offer were measured once by hand with the aioboto3 client below
(their figures are in the section's text; they are not installed, so this module does not re-run them)."""

import asyncio
import os
import tempfile
import time
from pathlib import Path

import aioboto3
import numpy as np
from botocore.config import Config

from bench.pipeline_stack import crop_jpeg, sample
from bench.report import table, write_section
from devstack.infra import S3_ACCESS_KEY, S3_SECRET_KEY, free_port, start_s3
from services.ingest.adapters.s3 import CropStore

PUTS, CONCURRENCY = 2000, 32
CANDIDATES = """Candidates measured by hand on this machine (1,000 puts of 12 KB, 32 at once, aioboto3 client with
SigV4; load average 6-8 from other work, so the rates are the client's share of the CPU as much as the
server's; the server's CPU per put is the fairer figure):

| server (registry) | puts/s | server CPU per put | what failed with our calls |
|---|---|---|---|
| moto 5.2.5 `moto_server` (PyPI) | 56-76 | 3.8 ms | memory only; its replayed recorder broke under concurrent puts |
| local-s3-server 0.2.2 (PyPI) | 64-233 | 1.8 ms | no common prefixes with a delimiter (retention walks by prefix) |
| pys3local 0.2.1 (PyPI) | 29-55 | 4.0 ms | presigned GET refused (identity's crop links) |
| s3rver 3.7.1 (npm) | 70-136 | 2.6 ms | no common prefixes with a delimiter; fixed S3RVER keys |
| alocals3 0.11.2 (PyPI, Rust) | - | - | wheel for Python 3.12+ only (we run 3.11); 0.3.0 is not an S3 API |
| MinIO | - | - | no package of it in PyPI, Debian or npm (npm's minio-for-tests downloads it at install) |
| devstack/s3_server.py (ours) | 133 | 0.58 ms | none |"""


async def put_rate(endpoint: str, server_pid: int, through: str) -> list[object]:
    jpeg = crop_jpeg(np.random.default_rng(1))
    limit = asyncio.Semaphore(CONCURRENCY)
    before_server, before_client, started = sample(server_pid).cpu_seconds, time.process_time(), time.monotonic()
    if through == "CropStore.put_crop":
        async with CropStore(endpoint, "bench", "us-east-1", S3_ACCESS_KEY, S3_SECRET_KEY, CONCURRENCY) as crops:
            await crops.ensure_bucket()
            before_server, before_client, started = (
                sample(server_pid).cpu_seconds,
                time.process_time(),
                time.monotonic(),
            )

            async def put(index: int) -> None:
                async with limit:
                    await crops.put_crop(f"t/s/2026/01/01/{index}.jpg", jpeg)

            await asyncio.gather(*(put(index) for index in range(PUTS)))
    else:
        session = aioboto3.Session(S3_ACCESS_KEY, S3_SECRET_KEY, region_name="us-east-1")
        config = Config(max_pool_connections=CONCURRENCY, s3={"addressing_style": "path"})
        async with session.client("s3", endpoint_url=endpoint, config=config) as client:

            async def put_object(index: int) -> None:
                async with limit:
                    await client.put_object(Bucket="bench", Key=f"t/b/{index}.jpg", Body=jpeg, ContentType="image/jpeg")

            await asyncio.gather(*(put_object(index) for index in range(PUTS)))
    elapsed = time.monotonic() - started
    server_ms = 1000 * (sample(server_pid).cpu_seconds - before_server) / PUTS
    client_ms = 1000 * (time.process_time() - before_client) / PUTS
    return [through, f"{PUTS / elapsed:.0f}", f"{server_ms:.2f} ms", f"{client_ms:.2f} ms", f"{len(jpeg):,} B"]


def main() -> None:
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as folder:
        endpoint, server = start_s3(Path(folder) / "s3", Path(folder) / "logs", free_port())
        try:
            rows = [
                asyncio.run(put_rate(endpoint, server.process.pid, way)) for way in ("CropStore.put_crop", "aioboto3")
            ]
        finally:
            server.stop()
    body = "\n\n".join(
        [
            table(["client", "puts/s", "server CPU per put", "client CPU per put", "object"], rows),
            f"{PUTS:,} puts, {CONCURRENCY} at once, one client process; load average before "
            f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (2 cores, shared with other work).",
            CANDIDATES,
        ]
    )
    write_section("s3", "Embedded S3: the dev server, and the candidates it replaced", body)
