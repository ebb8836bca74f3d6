"""Everything the reports page reads from reporting, in one place: visitors per local day and per local hour
(`/v1/reports/visitors`, whose totals carry the dwell median and distribution), who is in the site now
(`/v1/reports/occupancy`), and reporting's CSV exports passed through."""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

from services.console.adapters.apis import ServiceApi


@dataclass(frozen=True)
class ReportQuery:
    site_id: str
    first: date
    last: date

    def params(self) -> dict[str, str]:
        return {"site_id": self.site_id, "from": self.first.isoformat(), "to": self.last.isoformat()}


@dataclass(frozen=True)
class ReportData:
    by_day: dict[str, Any]
    """`/v1/reports/visitors` by the site's local days: each `period_start` carries the site's offset."""
    by_hour: dict[str, Any]
    occupancy: dict[str, Any]
    """`/v1/reports/occupancy` of the site's local today: `open_now` is who is in the site now."""


async def read_report(reporting: ServiceApi, query: ReportQuery) -> ReportData:
    params = query.params()
    by_day = await reporting.get("/v1/reports/visitors", **params, granularity="day")
    by_hour = await reporting.get("/v1/reports/visitors", **params, granularity="hour")
    occupancy = await reporting.get("/v1/reports/occupancy", site_id=query.site_id)
    return ReportData(by_day, by_hour, occupancy)


async def csv_export(reporting: ServiceApi, query: ReportQuery, what: str) -> httpx.Response:
    """Reporting's own CSV (`visitors` per day or `visits`), passed through to the browser as it is."""
    path = "/v1/reports/visitors" if what == "visitors" else "/v1/visits"
    return await reporting.call("GET", path, params={**query.params(), "format": "csv"})


def default_range(today: date) -> tuple[date, date]:
    """The last 7 days, today included."""
    return today - timedelta(days=6), today
