"""The analysts' API on real NATS and Postgres: local days of a site's zone, pages of visits, streamed CSV,
occupancy, and 404 for a site the registry does not know."""

import asyncio
import csv
import io
import uuid
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from nats.aio.client import Client as NatsClient

from services.reporting.api import CSV_CHUNK_BYTES
from services.reporting.bootstrap import Reporting
from tests.reporting.integration.conftest import SiteTenant
from tests.support_events import matched, publish_matched


async def call(reporting: Reporting, token: str, path: str, **params: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=reporting.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting", timeout=60) as client:
        return await client.get(path, params=params, headers={"authorization": f"Bearer {token}"})


async def wait_for_visits(reporting: Reporting, token: str, count: int, **params: Any) -> list[dict[str, Any]]:
    """The visits of the range once there are `count` of them (the consumer is asynchronous)."""
    for _ in range(200):
        items: list[dict[str, Any]] = (await call(reporting, token, "/v1/visits", limit=10_000, **params)).json()[
            "items"
        ]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(items)} visits, expected {count}")


async def test_a_new_york_visitor_at_0330_utc_counts_on_the_previous_local_day(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant({"nyc": "America/New_York"})
    token = make_token(tenant, ["analyst"])
    at = datetime(2026, 7, 15, 3, 30, tzinfo=UTC)  # 23:30 on July 14th in New York (EDT)
    await publish_matched(nats_connection, [matched(tenant, uuid.uuid4(), at, site="nyc", is_new=True)])
    days = {"site_id": "nyc", "from": "2026-07-14", "to": "2026-07-15"}
    [visit] = await wait_for_visits(reporting, token, 1, **days)
    assert visit["started_at"] == "2026-07-14T23:30:00-04:00"

    report = (await call(reporting, token, "/v1/reports/visitors", **days)).json()
    assert [(p["period_start"], p["visits"]) for p in report["periods"]] == [("2026-07-14T00:00:00-04:00", 1)]
    assert report["start"] == "2026-07-14T00:00:00-04:00" and report["end"] == "2026-07-16T00:00:00-04:00"
    july_15th = (await call(reporting, token, "/v1/reports/visitors", site_id="nyc", **{"from": "2026-07-15"},
                            to="2026-07-15")).json()  # fmt: skip
    assert july_15th["totals"]["visits"] == 0  # the UTC day of the sighting, not the store's


async def test_pages_hold_every_visit_exactly_once_also_visits_sharing_a_start(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    token = make_token(tenant, ["viewer"])
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    shared = [matched(tenant, uuid.uuid4(), start + timedelta(hours=1), is_new=True) for _ in range(9)]
    spread = [matched(tenant, uuid.uuid4(), start + timedelta(minutes=7 * i), is_new=True) for i in range(14)]
    await publish_matched(nats_connection, shared + spread)
    days = {"site_id": "store-1", "from": "2026-11-02", "to": "2026-11-02"}
    everything = await wait_for_visits(reporting, token, 23, **days)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = days | {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = (await call(reporting, token, "/v1/visits", **params)).json()
        pages += 1
        assert len(page["items"]) <= 4
        seen += [item["visit_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 6  # 23 visits by 4: five full pages and one of 3, and no empty page after them
    assert sorted(seen) == sorted(v["visit_id"] for v in everything) and len(set(seen)) == 23
    assert seen == [v["visit_id"] for v in everything]  # the same order as one big page: started_at, visit_id

    bad = await call(reporting, token, "/v1/visits", **days, cursor="not-a-cursor")
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]


async def test_dwell_is_the_last_sighting_minus_the_first(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    token = make_token(tenant, ["analyst"])
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    person, once = uuid.uuid4(), uuid.uuid4()
    await publish_matched(
        nats_connection,
        [matched(tenant, person, at), matched(tenant, person, at + timedelta(minutes=20)), matched(tenant, once, at)],
    )
    days = {"site_id": "store-1", "from": "2026-11-02", "to": "2026-11-02"}
    for _ in range(100):
        visits = await wait_for_visits(reporting, token, 2, **days)
        dwell = {uuid.UUID(v["person_id"]): v["dwell_seconds"] for v in visits}
        if dwell.get(person) == 1200:
            break
        await asyncio.sleep(0.1)
    assert dwell == {person: 1200, once: 0}
    exported_csv = (await call(reporting, token, "/v1/visits", **days, format="csv")).text
    exported = list(csv.DictReader(io.StringIO(exported_csv)))
    assert sorted(float(row["dwell_seconds"]) for row in exported) == [0, 1200]


async def copy_visits(postgres_dsn: str, tenant: str, site: str, count: int, start: datetime) -> None:
    """`count` visits straight into the table (a big export's data without a sighting each), one per second."""
    connection = await asyncpg.connect(postgres_dsn)
    try:
        records = [
            (tenant, uuid.uuid4(), site, uuid.uuid4(), start + timedelta(seconds=i), start + timedelta(seconds=i + 60),
             2, i % 3 == 0)
            for i in range(count)
        ]  # fmt: skip
        await connection.copy_records_to_table(
            "visits",
            schema_name="reporting",
            columns=["tenant_id", "visit_id", "site_id", "person_id", "started_at", "last_seen_at", "sightings",
                     "is_returning"],
            records=records,
        )  # fmt: skip
    finally:
        await connection.close()


async def asgi_response(
    reporting: Reporting, token: str, path: str, query: str
) -> tuple[int, dict[bytes, bytes], list[bytes]]:
    """Call the app as a server does and keep each body message it sends: httpx's ASGI transport joins them."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"reporting"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1), "server": ("reporting", 80),
    }  # fmt: skip
    sent: list[MutableMapping[str, Any]] = []
    requested, finished = False, asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        """The (empty) request, then nothing until the response is complete: the client stays connected."""
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            finished.set()

    await reporting.app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    chunks = [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]
    return start["status"], dict(start["headers"]), chunks


async def test_a_big_csv_export_arrives_in_chunks_header_first_every_visit_once(
    reporting: Reporting, postgres_dsn: str, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant({"store-1": "Europe/Paris"})
    count = 2 * CSV_CHUNK_BYTES // 100 + 1  # a row is more than 100 bytes: more than two chunks
    await copy_visits(postgres_dsn, tenant, "store-1", count, datetime(2026, 11, 2, 8, tzinfo=UTC))
    token = make_token(tenant, ["analyst"])
    query = "site_id=store-1&from=2026-11-02&to=2026-11-02&format=csv"
    status, headers, chunks = await asgi_response(reporting, token, "/v1/visits", query)
    assert status == 200 and headers[b"content-type"].startswith(b"text/csv")
    assert b"content-length" not in headers  # streamed: its length is not known when it starts
    assert chunks[0] == b"visit_id,person_id,started_at,last_seen_at,dwell_seconds,sightings,is_returning\r\n"
    body = chunks[1:]  # then one body message per CSV_CHUNK_BYTES or so, each of whole lines
    assert len(body) >= 3 and all(CSV_CHUNK_BYTES <= len(chunk) < 2 * CSV_CHUNK_BYTES for chunk in body[:-1])
    assert all(chunk.endswith(b"\r\n") and b"\r\r" not in chunk for chunk in body)
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert len(rows) == count and len({row["visit_id"] for row in rows}) == count
    assert rows[0]["started_at"] == "2026-11-02T09:00:00+01"  # ISO 8601 in the site's offset
    assert rows[0]["dwell_seconds"] == "60" and rows[0]["is_returning"] == "true"


async def test_an_empty_csv_export_is_its_header_row(
    reporting: Reporting, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    token = make_token(await site_tenant(), ["analyst"])
    params = {"site_id": "store-1", "from": "2026-11-02", "to": "2026-11-02", "format": "csv"}
    response = await call(reporting, token, "/v1/visits", **params)
    assert response.text == "visit_id,person_id,started_at,last_seen_at,dwell_seconds,sightings,is_returning\r\n"


async def test_occupancy_shows_a_visitor_seen_two_minutes_ago(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    token = make_token(tenant, ["analyst"])
    now = datetime.now(UTC)
    here, gone = uuid.uuid4(), uuid.uuid4()
    await publish_matched(
        nats_connection,
        [
            matched(tenant, here, now - timedelta(minutes=12), is_new=True),
            matched(tenant, here, now - timedelta(minutes=2)),
            matched(tenant, gone, now - timedelta(hours=3), is_new=True),  # left long ago
        ],
    )
    yesterday = (now - timedelta(days=1)).date().isoformat()
    params = {"site_id": "store-1", "from": yesterday, "to": now.date().isoformat()}
    for _ in range(100):
        body = (await call(reporting, token, "/v1/reports/occupancy", **params)).json()
        if body["open_visits"] and body["open_visits"][0]["sightings"] == 2:
            break
        await asyncio.sleep(0.1)
    assert body["open_now"] == 1
    assert [uuid.UUID(v["person_id"]) for v in body["open_visits"]] == [here]
    assert body["open_visits"][0]["dwell_seconds"] == 600
    hour_now = (now - timedelta(minutes=2)).replace(minute=0, second=0, microsecond=0)
    occupied = {datetime.fromisoformat(h["hour_start"]): h["visits"] for h in body["hours"] if h["visits"]}
    assert occupied.get(hour_now, 0) >= 1
    assert len(body["hours"]) == 48


async def test_occupancy_per_local_hour_with_its_peak_and_dst_days(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant({"nyc": "America/New_York"})
    token = make_token(tenant, ["analyst"])
    at = datetime(2026, 7, 14, 14, 50, tzinfo=UTC)  # 10:50 in New York
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish_matched(
        nats_connection,
        [
            matched(tenant, first, at, site="nyc"),
            matched(tenant, first, at + timedelta(minutes=15), site="nyc"),  # 10:50-11:05: hours 10 and 11
            matched(tenant, second, at + timedelta(minutes=20), site="nyc"),  # 11:10, one sighting: hour 11
            matched(tenant, third, at + timedelta(hours=2, minutes=10), site="nyc"),  # 13:00: hour 13
        ],
    )
    day = {"site_id": "nyc", "from": "2026-07-14", "to": "2026-07-14"}
    await wait_for_visits(reporting, token, 3, **day)
    for _ in range(100):
        body = (await call(reporting, token, "/v1/reports/occupancy", **day)).json()
        if body["peak"] and body["peak"]["visits"] == 2:
            break
        await asyncio.sleep(0.1)
    occupied = [(h["hour_start"], h["visits"]) for h in body["hours"] if h["visits"]]
    assert occupied == [
        ("2026-07-14T10:00:00-04:00", 1),
        ("2026-07-14T11:00:00-04:00", 2),
        ("2026-07-14T13:00:00-04:00", 1),
    ]
    assert body["peak"] == {"hour_start": "2026-07-14T11:00:00-04:00", "visits": 2}
    assert len(body["hours"]) == 24 and body["time_zone"] == "America/New_York"

    for dst_day, hours in (("2026-03-08", 23), ("2026-11-01", 25)):
        dst = await call(reporting, token, "/v1/reports/occupancy", site_id="nyc", **{"from": dst_day}, to=dst_day)
        assert len(dst.json()["hours"]) == hours and dst.json()["peak"] is None
    exported = (await call(reporting, token, "/v1/reports/occupancy", **day, format="csv")).text.splitlines()
    assert exported[0] == "hour_start,visits" and "2026-07-14T11:00:00-04:00,2" in exported
    too_long = await call(reporting, token, "/v1/reports/occupancy", site_id="nyc", **{"from": "2026-07-01"},
                          to="2026-08-15")  # fmt: skip
    assert too_long.status_code == 422 and "31 days" in too_long.json()["detail"]


async def test_every_route_is_a_404_with_the_reason_for_a_site_the_registry_does_not_know(
    reporting: Reporting, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    token = make_token(tenant, ["analyst"])
    days = {"from": "2026-11-02", "to": "2026-11-02"}
    for path in ("/v1/reports/visitors", "/v1/visits", "/v1/reports/occupancy"):
        for format in ("json", "csv"):
            response = await call(reporting, token, path, site_id="mall-7", format=format, **days)
            assert response.status_code == 404, path
            reason = f"site mall-7 is not registered for tenant {tenant} (PUT /v1/sites/mall-7)"
            assert response.json()["detail"] == reason
