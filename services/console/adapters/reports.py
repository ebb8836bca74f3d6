"""Everything the reports page reads from reporting, in one place: when reporting serves dwell, occupancy and
local-time reports itself (issue 9), only this module changes.

Today: `/v1/reports/visitors` per day and per hour, and `/v1/visits` (a list; a page `{"items",
"next_cursor"}` is read as well, following the cursor) for dwell and who is in the site now."""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

from services.console.adapters.apis import ServiceApi

MAX_VISIT_PAGES = 50


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
    by_hour: dict[str, Any]
    visits: list[dict[str, Any]]
    visits_today: list[dict[str, Any]]


async def visits_of(reporting: ServiceApi, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every visit of the range, whether reporting answers a list or pages with a cursor."""
    answer = await reporting.get("/v1/visits", **params)
    if isinstance(answer, list):
        return answer
    visits, pages = list(answer["items"]), 1
    while answer.get("next_cursor") and pages < MAX_VISIT_PAGES:
        answer = await reporting.get("/v1/visits", **params, cursor=answer["next_cursor"])
        visits += answer["items"]
        pages += 1
    return visits


async def read_report(reporting: ServiceApi, query: ReportQuery, today: date) -> ReportData:
    params = query.params()
    by_day = await reporting.get("/v1/reports/visitors", **params, granularity="day")
    by_hour = await reporting.get("/v1/reports/visitors", **params, granularity="hour")
    visits = await visits_of(reporting, params)
    today_params = {"site_id": query.site_id, "from": today.isoformat(), "to": today.isoformat()}
    visits_today = await visits_of(reporting, today_params)
    return ReportData(by_day, by_hour, visits, visits_today)


async def csv_export(reporting: ServiceApi, query: ReportQuery, what: str) -> httpx.Response:
    """Reporting's own CSV (`visitors` per day or `visits`), passed through to the browser as it is."""
    path = "/v1/reports/visitors" if what == "visitors" else "/v1/visits"
    return await reporting.call("GET", path, params={**query.params(), "format": "csv"})


def default_range(today: date) -> tuple[date, date]:
    """The last 7 days, today included."""
    return today - timedelta(days=6), today
