"""Reporting against real NATS JetStream and Postgres: visits from matches, and the analysts' API."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from nats.aio.client import Client as NatsClient
from prometheus_client import REGISTRY

from schemas import FaceUnidentified, PersonKind, VisitRecord, subjects
from services.reporting.bootstrap import Reporting
from tests.reporting.integration.conftest import SiteTenant
from tests.support import collect_messages, new_tenant
from tests.support_events import matched, publish_matched, unidentified

DAY1 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def counts_only(period: dict) -> dict:
    """A period's JSON without its dwell distribution (test_local_reports checks distributions)."""
    return {key: value for key, value in period.items() if key != "dwell_distribution"}


async def report(reporting: Reporting, token: str, **params: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=reporting.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
        query = {"site_id": "store-1", "from": "2026-11-01", "to": "2026-11-05"} | params
        return await client.get("/v1/reports/visitors", params=query, headers={"authorization": f"Bearer {token}"})


async def sightings_in_visits(reporting: Reporting, token: str) -> int:
    transport = httpx.ASGITransport(app=reporting.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
        query = {"site_id": "store-1", "from": "2026-11-01", "to": "2026-11-05", "limit": "10000"}
        page = await client.get("/v1/visits", params=query, headers={"authorization": f"Bearer {token}"})
    return sum(visit["sightings"] for visit in page.json()["items"])


async def wait_for_report(
    reporting: Reporting, token: str, visits: int, timeout: float = 20, sightings: int | None = None
) -> dict:
    """The report once it counts `visits` visits (and, given `sightings`, once every one of them is folded: a
    sighting joining a visit changes no count but its dwell), or the last one read at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await report(reporting, token)).json()
        folded = sightings is None or await sightings_in_visits(reporting, token) == sightings
        if (body["totals"]["visits"] >= visits and folded) or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.2)


async def test_visits_new_and_returning(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    alice, bob, staff = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        matched(tenant, alice, DAY1, is_new=True),
        matched(tenant, alice, DAY1 + timedelta(minutes=10)),  # same visit
        matched(tenant, bob, DAY1 + timedelta(minutes=5), is_new=True),
        matched(tenant, alice, DAY2),  # alice returns
        matched(tenant, staff, DAY1, kind=PersonKind.STAFF),  # never a visitor
    ]
    await publish_matched(nats_connection, events)
    await publish_matched(nats_connection, [events[0]])  # a redelivered duplicate changes nothing
    token = make_token(tenant, ["analyst"])
    body = await wait_for_report(reporting, token, visits=3, sightings=4)  # alice's two on day one are one visit
    assert counts_only(body["totals"]) == {
        "period_start": body["totals"]["period_start"],
        "visits": 3,
        "unique_visitors": 2,
        "new_visitors": 2,
        "returning_visitors": 1,
        "returning_visits": 1,
        "unidentified_sightings": 0,
        "returning_rate": 0.5,
        "visits_per_visitor": 1.5,
        "dwell_seconds_avg": 200.0,  # alice's first visit 600 s, bob's and alice's return 0 s
        "dwell_seconds_median": 0.0,
    }
    days = {p["period_start"][:10]: p for p in body["periods"]}
    assert days["2026-11-02"]["visits"] == 2 and days["2026-11-02"]["new_visitors"] == 2
    assert days["2026-11-03"]["returning_visitors"] == 1 and days["2026-11-03"]["new_visitors"] == 0
    records = await collect_messages(nats_connection, f"visits.{tenant}.>", 3)
    assert {VisitRecord.model_validate_json(m.data).person_id for m in records} <= {alice, bob}


async def test_late_sighting_merges_two_visits(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    carol = uuid.uuid4()
    await publish_matched(
        nats_connection, [matched(tenant, carol, DAY1), matched(tenant, carol, DAY1 + timedelta(minutes=50))]
    )
    token = make_token(tenant, ["viewer"])
    assert (await wait_for_report(reporting, token, visits=2))["totals"]["visits"] == 2
    await publish_matched(nats_connection, [matched(tenant, carol, DAY1 + timedelta(minutes=25))])
    for _ in range(100):
        totals = (await report(reporting, token)).json()["totals"]
        if totals["visits"] == 1:
            break
        await asyncio.sleep(0.2)
    assert totals["visits"] == 1 and totals["returning_visits"] == 0


async def test_tenants_see_only_their_own_visits(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    await publish_matched(nats_connection, [matched(tenant, uuid.uuid4(), DAY1)])
    assert (await wait_for_report(reporting, make_token(tenant, ["analyst"]), visits=1))["totals"]["visits"] == 1
    other = (await report(reporting, make_token(await site_tenant(), ["analyst"]))).json()
    assert other["totals"]["visits"] == 0  # the same site name in another tenant: none of this tenant's visits


async def test_api_refuses_bad_requests_with_reasons(
    reporting: Reporting, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    token = make_token(tenant, ["analyst"])
    transport = httpx.ASGITransport(app=reporting.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
        unauthenticated = await client.get(
            "/v1/reports/visitors", params={"site_id": "s", "from": "2026-11-01", "to": "2026-11-02"}
        )
        assert unauthenticated.status_code == 401
    device = await report(reporting, make_token(new_tenant(), ["device"]))
    assert device.status_code == 403
    backwards = await report(reporting, token, **{"from": "2026-11-05", "to": "2026-11-01"})
    assert backwards.status_code == 422 and "after" in backwards.text
    bad_site = await report(reporting, token, site_id="Not A Site")
    assert bad_site.status_code == 422
    unknown = await report(reporting, token, site_id="store-9")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == f"site store-9 is not registered for tenant {tenant} (PUT /v1/sites/store-9)"
    elsewhere = await report(reporting, make_token(new_tenant(), ["analyst"]))  # a tenant with no sites
    assert elsewhere.status_code == 404 and "is not registered for tenant" in elsewhere.json()["detail"]


async def test_csv_export(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    await publish_matched(nats_connection, [matched(tenant, uuid.uuid4(), DAY1)])
    token = make_token(tenant, ["analyst"])
    await wait_for_report(reporting, token, visits=1)
    csv_text = (await report(reporting, token, format="csv")).text
    header, row = csv_text.strip().splitlines()
    assert header.startswith("period_start,visits,unique_visitors")
    assert row.split(",")[1:4] == ["1", "1", "1"]


async def publish_unidentified(connection: NatsClient, event: FaceUnidentified, message_id: str = "") -> None:
    """Publish with `Nats-Msg-Id` = event id unless told otherwise, and check that the stream kept it."""
    ack = await connection.jetstream().publish(
        subjects.face_unidentified(event.tenant_id, event.site_id),
        event.to_json_bytes(),
        headers={"Nats-Msg-Id": message_id or str(event.event_id)},
    )
    assert not ack.duplicate


def unidentified_handled() -> float:
    """Messages reporting's unidentified-sightings handler finished without error (this process's metric)."""
    labels = {"service": "reporting", "subject_family": "faces.unidentified", "outcome": "ok"}
    return REGISTRY.get_sample_value("revisit_messages_consumed_total", labels) or 0.0


async def wait_until_handled(count: float, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while unidentified_handled() < count and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert unidentified_handled() == count


async def test_unidentified_sightings_are_counted_per_period_and_once(
    reporting: Reporting, nats_connection: NatsClient, make_token: Callable[..., str], site_tenant: SiteTenant
) -> None:
    tenant = await site_tenant()
    await publish_matched(nats_connection, [matched(tenant, uuid.uuid4(), DAY1, is_new=True)])
    weak = [
        unidentified(tenant, DAY1 + timedelta(minutes=1)),
        unidentified(tenant, DAY1 + timedelta(hours=2)),
        unidentified(tenant, DAY2),  # a day with no visit at all
        unidentified(tenant, DAY1, site="store-2"),  # another site: not in this report
    ]
    handled_before = unidentified_handled()
    for event in weak:
        await publish_unidentified(nats_connection, event)
    # the same event again under a new message id: JetStream keeps it, the handler gets it and counts it once
    await publish_unidentified(nats_connection, weak[0], message_id=f"replayed-{weak[0].event_id}")
    await wait_until_handled(handled_before + len(weak) + 1)
    token = make_token(tenant, ["analyst"])
    body = await wait_for_report(reporting, token, visits=1)

    assert body["totals"]["unidentified_sightings"] == 3
    assert body["totals"]["visits"] == 1 and body["totals"]["unique_visitors"] == 1  # never persons
    days = {p["period_start"][:10]: p for p in body["periods"]}
    assert days["2026-11-02"]["unidentified_sightings"] == 2 and days["2026-11-02"]["visits"] == 1
    assert counts_only(days["2026-11-03"]) == {
        "period_start": days["2026-11-03"]["period_start"],
        "returning_rate": None,
        "visits_per_visitor": None,
        "dwell_seconds_avg": None,
        "dwell_seconds_median": None,
        "visits": 0,
        "unique_visitors": 0,
        "new_visitors": 0,
        "returning_visitors": 0,
        "returning_visits": 0,
        "unidentified_sightings": 1,
    }
    hours = (await report(reporting, token, granularity="hour")).json()
    assert [(p["period_start"][11:13], p["unidentified_sightings"]) for p in hours["periods"]] == [
        ("10", 1),
        ("12", 1),
        ("10", 1),
    ]
    assert hours["totals"]["unidentified_sightings"] == 3
    header, *rows = (await report(reporting, token, format="csv")).text.strip().splitlines()
    column = header.split(",").index("unidentified_sightings")
    assert [row.split(",")[column] for row in rows] == ["2", "1"]
    other = (await report(reporting, make_token(await site_tenant(), ["analyst"]))).json()
    assert other["totals"]["unidentified_sightings"] == 0
    empty = (await report(reporting, make_token(await site_tenant(), ["analyst"]), format="csv")).text
    assert empty.strip() == header  # an empty export still has its header row
