"""`/reports`: visitors per day and per hour, new vs returning, dwell, who is in the site now, CSV downloads."""

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.adapters.reports import ReportData, ReportQuery, csv_export, default_range, read_report
from services.console.domain.charts import BarChart, Series, bar_chart
from services.console.domain.persons import day_of
from services.console.domain.visits import dwell_bars, local_day, visits_by_hour_of_day
from services.console.rendering import page, redirect
from services.console.session import SignedIn

router = APIRouter(include_in_schema=False)


def query_of(request: Request, site_id: str, today: date) -> ReportQuery:
    first, last = default_range(today)
    first = day_of(request.query_params.get("from")) or first
    last = day_of(request.query_params.get("to")) or last
    return ReportQuery(site_id, min(first, last), max(first, last))


def charts_of(data: ReportData) -> list[BarChart]:
    """Visitors per day, visits per hour of the day, new vs returning per day, time spent per visit."""
    periods = data.by_day["periods"]
    days = [local_day(period) for period in periods]
    unique = Series("unique visitors", "bar", [period["unique_visitors"] for period in periods])
    new = Series("new", "bar", [period["new_visitors"] for period in periods])
    returning = Series("returning", "bar returning", [period["returning_visitors"] for period in periods])
    hours = Series("visits", "bar", visits_by_hour_of_day(data.by_hour["periods"]))
    dwell_labels, dwell_visits = dwell_bars(data.by_day["totals"]["dwell_distribution"])
    return [
        bar_chart("Visitors per day", days, [unique]),
        bar_chart("Visits per hour of the day (local time)", [f"{hour:02d}" for hour in range(24)], [hours]),
        bar_chart("New and returning visitors per day", days, [new, returning]),
        bar_chart("Time spent per visit", dwell_labels, [Series("visits", "bar", dwell_visits)]),
    ]


def local_today(sites: list[dict[str, Any]], site_id: str, now: datetime) -> date:
    """Today in the site's time zone (the reports' days are the site's), UTC for a site without a known zone."""
    zone = next((site.get("time_zone") for site in sites if site["site_id"] == site_id), None)
    try:
        return now.astimezone(ZoneInfo(zone)).date() if zone else now.date()
    except (ZoneInfoNotFoundError, ValueError):
        return now.date()


@router.get("/reports")
async def reports(request: Request, user: SignedIn, site_id: str = "") -> HTMLResponse:
    sites = (await user.apis.identity.get("/v1/sites"))["items"]
    if not site_id and sites:
        site_id = sites[0]["site_id"]
    query = query_of(request, site_id, local_today(sites, site_id, datetime.now(UTC)))
    if not site_id:
        return page(request, "reports.html", user, "Reports", sites=sites, query=query, data=None, charts=[])
    data = await read_report(user.apis.reporting, query)
    charts = charts_of(data)
    median = data.by_day["totals"]["dwell_seconds_median"]
    return page(
        request,
        "reports.html",
        user,
        "Reports",
        sites=sites,
        query=query,
        data=data,
        charts=charts,
        totals=data.by_day["totals"],
        median_dwell=None if median is None else median / 60,
        present=data.occupancy["open_now"],
        time_zone=data.occupancy["time_zone"],
    )


@router.get("/reports/{what}.csv")
async def download(request: Request, user: SignedIn, what: str, site_id: str) -> Response:
    """Reporting's CSV with the user's token (the browser cannot send it to reporting itself)."""
    if what not in ("visitors", "visits"):
        return redirect("/reports", error="the downloads are visitors.csv and visits.csv")
    exported = await csv_export(user.apis.reporting, query_of(request, site_id, datetime.now(UTC).date()), what)
    disposition = exported.headers.get("content-disposition", f'attachment; filename="{what}.csv"')
    return Response(exported.content, media_type="text/csv", headers={"Content-Disposition": disposition})
