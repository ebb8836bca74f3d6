"""Reporting's REST routes for analysts: visitor counts, visits page by page, occupancy, as JSON or streamed CSV.

Every route names a site the registry knows (else 404 with the reason) and reads days and hours in that site's
time zone: a date bound is a local day, and timestamps come back with the site's local offset."""

import base64
import binascii
import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from schemas.base import TOKEN_PATTERN
from services.common.auth import Principal, Role, require_roles
from services.reporting.adapters.postgres import Counts, Granularity, ReportRow, VisitStore
from services.reporting.adapters.visit_pages import CSV_COLUMNS, HourOccupancy, VisitKey, VisitPages, VisitRow
from services.reporting.domain.reports import DWELL_BUCKETS, returning_rate, visits_per_visitor
from services.reporting.domain.sites import SiteNotRegistered, SiteZones

router = APIRouter(
    prefix="/v1",
    tags=["reports"],
    responses={status.HTTP_404_NOT_FOUND: {"description": "The registry has no such site for the caller's tenant"}},
)
Analyst = Annotated[Principal, Depends(require_roles(Role.ANALYST, Role.ADMIN, Role.VIEWER))]
SiteId = Annotated[str, Query(pattern=TOKEN_PATTERN, description="Site to report on")]
From = Annotated[
    str,
    Query(
        alias="from",
        description="Start: a date YYYY-MM-DD (00:00 in the site's time zone) or an ISO datetime (site's local"
        " time if it has no offset)",
        examples=["2026-10-01", "2026-10-01T08:00:00+02:00"],
    ),
]
To = Annotated[
    str,
    Query(
        alias="to",
        description="End: a date YYYY-MM-DD (the whole local day, included) or an exclusive datetime",
        examples=["2026-10-07", "2026-10-01T20:00:00+02:00"],
    ),
]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv (streamed, header row first)")]
CSV_CHUNK_ROWS = 5000
"""Rows per chunk of a streamed CSV report (periods, hours)."""
CSV_CHUNK_BYTES = 1 << 20
"""About how large each body chunk of a visits export is (about 8,000 visits): large enough that the per-chunk
work is nothing beside the rows', small enough that the export holds a few MB whatever its size."""


@dataclass(frozen=True)
class RegisteredSite:
    """A site of the caller's tenant that the registry knows, with its time zone."""

    site_id: str
    zone: ZoneInfo


async def registered_site(principal: Analyst, request: Request, site_id: SiteId) -> RegisteredSite:
    """The site and its zone from reporting's mirror of the registry; 404 with the reason if the tenant has no
    such site (a report of zeros for a mistyped site looked like a quiet day)."""
    zones: SiteZones = request.app.state.site_zones
    try:
        return RegisteredSite(site_id, zones.zone_of(principal.tenant_id, site_id))
    except SiteNotRegistered as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error


Site = Annotated[RegisteredSite, Depends(registered_site)]


class VisitorCounts(BaseModel):
    period_start: datetime
    visits: int
    unique_visitors: int
    new_visitors: int
    returning_visitors: int
    returning_visits: int
    unidentified_sightings: int = Field(
        description="Faces seen but too poor to recognise: counted here, never persons, so in no other figure"
    )
    returning_rate: float | None = Field(description="returning_visitors / unique_visitors; null without visitors")
    visits_per_visitor: float | None = Field(description="visits / unique_visitors; null without visitors")
    dwell_seconds_avg: float | None = Field(description="Mean of last_seen_at - started_at of the visits")
    dwell_seconds_median: float | None = Field(description="Median dwell of the visits (interpolated)")
    dwell_distribution: dict[str, int] = Field(
        description="Visits per dwell bucket: "
        + ", ".join(
            f"{b.name} [{b.min_seconds}, {b.max_seconds if b.max_seconds is not None else 'inf'}) s"
            for b in DWELL_BUCKETS
        )
    )


class VisitorReport(BaseModel):
    site_id: str
    granularity: Granularity
    start: datetime
    end: datetime
    totals: VisitorCounts
    periods: list[VisitorCounts]


class VisitOut(BaseModel):
    visit_id: uuid.UUID
    person_id: uuid.UUID
    started_at: datetime = Field(description="First sighting, in the site's local offset")
    last_seen_at: datetime = Field(description="Last sighting, in the site's local offset")
    dwell_seconds: float = Field(description="Last sighting minus first: 0 for a visit of one sighting")
    sightings: int
    is_returning: bool


def parse_bound(text: str, name: str, is_end: bool, zone: tzinfo = UTC) -> datetime:
    """A date means a whole day in `zone` (the site's; so an end date is included, and a DST day is 23 or 25
    hours); a datetime is used as given, in `zone` if it has no offset. Returned in UTC.
    A bound the calendar cannot hold in UTC (the day after 9999-12-31, 0001-01-01 at +14:00) is refused."""
    try:
        if len(text) == len("YYYY-MM-DD"):
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if is_end else day, time.min, tzinfo=zone).astimezone(UTC)
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)
    except ValueError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"`{name}` is not an ISO date or datetime"
        ) from error
    except OverflowError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"`{name}` is outside the dates a report can cover (years 1-9999 UTC)",
        ) from error


def time_range(
    start: str, end: str, zone: tzinfo = UTC, longest: timedelta = timedelta(days=400)
) -> tuple[datetime, datetime]:
    """[from, to) in UTC from the request's bounds read in the site's zone, at most `longest` long."""
    first, last = parse_bound(start, "from", False, zone), parse_bound(end, "to", True, zone)
    if last <= first:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "`to` must be after `from`")
    if last - first > longest + timedelta(hours=2):  # local days: a range over a DST change is an hour longer
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"a report covers at most {longest.days} days")
    return first, last


@router.get("/reports/visitors", response_model=VisitorReport)
async def visitor_report(
    principal: Analyst,
    request: Request,
    site: Site,
    start: From,
    end: To,
    granularity: Annotated[Granularity, Query()] = "day",
    format: Format = "json",
) -> VisitorReport | Response:
    """Visits, unique, new and returning visitors, and unidentified sightings, per local day or hour at one site
    of the caller's tenant; `period_start` carries the site's offset."""
    first, last = time_range(start, end, site.zone)
    store: VisitStore = request.app.state.visit_store
    rows, totals = await store.visitor_report(principal.tenant_id, site.site_id, first, last, granularity, site.zone)
    periods = [_counts(row, site.zone) for row in rows]
    if format == "csv":
        columns = list(_flat_counts(_counts(totals, site.zone)))
        lines = ([flat[column] for column in columns] for flat in map(_flat_counts, periods))
        return _csv_stream(columns, _csv_chunks(lines), f"visitors_{site.site_id}.csv")
    return VisitorReport(
        site_id=site.site_id,
        granularity=granularity,
        start=first.astimezone(site.zone),
        end=last.astimezone(site.zone),
        totals=_counts(totals, site.zone),
        periods=periods,
    )


class VisitPage(BaseModel):
    items: list[VisitOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page. Opaque: do not build one."
    )


Limit = Annotated[int, Query(ge=1, le=10_000, description="Visits per page (JSON only; CSV streams them all)")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]


@router.get("/visits", response_model=VisitPage)
async def list_visits(
    principal: Analyst,
    request: Request,
    site: Site,
    start: From,
    end: To,
    limit: Limit = 1000,
    cursor: Cursor = None,
    format: Format = "json",
) -> VisitPage | Response:
    """Visits that started in the range at one site, oldest first, a page at a time (keyset on started_at and
    visit id, so every visit is on exactly one page while visits are added); CSV streams them all."""
    first, last = time_range(start, end, site.zone)
    pages: VisitPages = request.app.state.visit_pages
    if format == "csv":
        lines = pages.stream_visit_csv(principal.tenant_id, site.site_id, first, last, site.zone.key, CSV_CHUNK_BYTES)
        return _csv_stream(list(CSV_COLUMNS), lines, f"visits_{site.site_id}.csv")
    rows = await pages.page(principal.tenant_id, site.site_id, first, last, limit + 1, _read_cursor(cursor))
    more = len(rows) > limit
    items = [_visit_out(row, site.zone) for row in rows[:limit]]
    return VisitPage(items=items, next_cursor=_write_cursor(rows[limit - 1].key) if more else None)


class HourOut(BaseModel):
    hour_start: datetime
    visits: int = Field(description="Visits that overlap the hour (started before it ended, last seen in or after it)")


class OccupancyReport(BaseModel):
    site_id: str
    time_zone: str
    as_of: datetime
    open_now: int = Field(description="Visits last seen less than the visit gap ago: a sighting now would join them")
    open_visits: list[VisitOut]
    start: datetime
    end: datetime
    hours: list[HourOut] = Field(description="Every local hour of the range, empty ones too")
    peak: HourOut | None = Field(description="The first hour with the most visits; null if the range had none")


@router.get("/reports/occupancy", response_model=OccupancyReport)
async def occupancy_report(
    principal: Analyst,
    request: Request,
    site: Site,
    start: Annotated[str | None, Query(alias="from", description="Start (default: today, local)")] = None,
    end: Annotated[str | None, Query(alias="to", description="End (default: today, local, included)")] = None,
    format: Format = "json",
) -> OccupancyReport | Response:
    """Who is at the site now (its open visits) and how many visits each local hour of the range held, with the
    peak hour; a range covers at most 31 days."""
    now = datetime.now(UTC)
    today = now.astimezone(site.zone).date().isoformat()
    first, last = time_range(start or today, end or today, site.zone, longest=timedelta(days=31))
    pages: VisitPages = request.app.state.visit_pages
    hours = [
        _hour_out(hour, site.zone)
        for hour in await pages.occupancy_by_hour(principal.tenant_id, site.site_id, first, last, site.zone.key)
    ]
    if format == "csv":
        lines = ([hour.hour_start.isoformat(), hour.visits] for hour in hours)
        return _csv_stream(list(HourOut.model_fields), _csv_chunks(lines), f"occupancy_{site.site_id}.csv")
    open_visits = await pages.open_visits(principal.tenant_id, site.site_id, now, request.app.state.visit_gap)
    busiest = max(hours, key=lambda hour: hour.visits, default=None)
    return OccupancyReport(
        site_id=site.site_id,
        time_zone=site.zone.key,
        as_of=now.astimezone(site.zone),
        open_now=len(open_visits),
        open_visits=[_visit_out(row, site.zone) for row in open_visits],
        start=first.astimezone(site.zone),
        end=last.astimezone(site.zone),
        hours=hours,
        peak=busiest if busiest is not None and busiest.visits > 0 else None,
    )


def _counts(row: ReportRow, zone: tzinfo) -> VisitorCounts:
    values = row.__dict__ | {
        "period_start": row.period_start.astimezone(zone),
        "dwell_distribution": dict(zip((b.name for b in DWELL_BUCKETS), row.dwell_distribution, strict=True)),
        "returning_rate": returning_rate(row.returning_visitors, row.unique_visitors),
        "visits_per_visitor": visits_per_visitor(row.visits, row.unique_visitors),
    }
    return VisitorCounts(**values)


def _flat_counts(counts: VisitorCounts) -> dict[str, object]:
    """One CSV row: the dwell distribution as one column per bucket (`dwell_<bucket>`)."""
    values = counts.model_dump(mode="json", exclude={"dwell_distribution"})
    return values | {f"dwell_{name}": visits for name, visits in counts.dwell_distribution.items()}


def _visit_out(row: VisitRow, zone: tzinfo) -> VisitOut:
    return VisitOut(
        visit_id=row.visit_id,
        person_id=row.person_id,
        started_at=row.started_at.astimezone(zone),
        last_seen_at=row.last_seen_at.astimezone(zone),
        dwell_seconds=row.dwell_seconds,
        sightings=row.sightings,
        is_returning=row.is_returning,
    )


def _hour_out(hour: HourOccupancy, zone: tzinfo) -> HourOut:
    return HourOut(hour_start=hour.hour_start.astimezone(zone), visits=hour.visits)


def _write_cursor(key: VisitKey) -> str:
    return base64.urlsafe_b64encode(f"{key.started_at.isoformat()}|{key.visit_id}".encode()).decode()


def _read_cursor(cursor: str | None) -> VisitKey | None:
    """The key a `next_cursor` stands for; 422 for anything this API did not give."""
    if cursor is None:
        return None
    try:
        started_at, visit_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        key = VisitKey(datetime.fromisoformat(started_at), uuid.UUID(visit_id))
    except (ValueError, binascii.Error) as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "`cursor` is not a `next_cursor` this API gave"
        ) from error
    if key.started_at.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "`cursor` is not a `next_cursor` this API gave")
    return key


async def _csv_chunks(rows: Iterable[Sequence[object]]) -> AsyncIterator[str]:
    """Rows already in memory (a report's periods) as CSV text, CSV_CHUNK_ROWS rows a chunk."""
    chunk: list[Sequence[object]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CSV_CHUNK_ROWS:
            yield _csv_lines(chunk)
            chunk = []
    if chunk:
        yield _csv_lines(chunk)


def _csv_stream(
    columns: list[str], lines: AsyncIterator[str] | AsyncIterator[bytes], filename: str
) -> StreamingResponse:
    """A CSV sent as it is produced, one body chunk per chunk of lines, so memory holds one chunk whatever the
    export's size. The header row always comes first: an empty export is a file with its columns, not 0 bytes."""

    async def body() -> AsyncIterator[str | bytes]:
        yield _csv_lines([columns])
        async for chunk in lines:
            yield chunk

    return StreamingResponse(
        body(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _csv_lines(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


class TenantCounts(BaseModel):
    """What a tenant-wide report says of a local date, a site or a whole range (docs/reports.md)."""

    visits: int
    unique_visitors: int
    new_visitors: int
    returning_visitors: int
    returning_visits: int
    unidentified_sightings: int
    returning_rate: float | None
    visits_per_visitor: float | None
    dwell_seconds_avg: float | None
    dwell_seconds_median: float | None = Field(description="To the minute: from dwell counted per whole minute")
    dwell_distribution: dict[str, int]


class TenantDay(TenantCounts):
    day: date = Field(description="A local date: every visit counts on its own site's local date")


class TenantReport(BaseModel):
    start: date
    end: date = Field(description="The last local date included")
    totals: TenantCounts = Field(description="Unique visitors are distinct persons across the range, not a sum")
    periods: list[TenantDay]


class SiteTotals(TenantCounts):
    site_id: str


class SiteComparison(BaseModel):
    start: date
    end: date = Field(description="The last local date included")
    sites: list[SiteTotals]


def local_dates(start: date, end: date) -> tuple[date, date]:
    """[start, end] as [first, end + 1 day), within the report limit."""
    if end < start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "`to` must not be before `from`")
    if (end - start).days >= 400:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a report covers at most 400 days")
    return start, end + timedelta(days=1)


def tenant_zones(principal: Principal, request: Request) -> dict[str, ZoneInfo]:
    """The tenant's registered sites and their zones, from reporting's mirror of the site registry."""
    zones: dict[str, ZoneInfo] = request.app.state.site_zones.sites_of(principal.tenant_id)
    return zones


@router.get("/reports/tenant", response_model=TenantReport)
async def tenant_report(
    principal: Analyst,
    request: Request,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
) -> TenantReport:
    """The caller's tenant over all its sites, per local date (each visit on its own site's local date)."""
    first, after = local_dates(start, end)
    store: VisitStore = request.app.state.visit_store
    days, totals = await store.tenant_report(principal.tenant_id, first, after, tenant_zones(principal, request))
    return TenantReport(
        start=start,
        end=end,
        totals=TenantCounts(**_tenant_counts(totals)),
        periods=[TenantDay(day=d.day, **_tenant_counts(d)) for d in days],
    )


@router.get("/reports/sites", response_model=SiteComparison)
async def site_comparison(
    principal: Analyst,
    request: Request,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
) -> SiteComparison:
    """The caller's sites side by side over the same local dates (each site's own): one row of totals per site."""
    first, after = local_dates(start, end)
    store: VisitStore = request.app.state.visit_store
    sites = await store.site_comparison(principal.tenant_id, first, after, tenant_zones(principal, request))
    return SiteComparison(
        start=start, end=end, sites=[SiteTotals(site_id=s.site_id, **_tenant_counts(s)) for s in sites]
    )


def _tenant_counts(counts: Counts) -> dict[str, object]:
    return {
        "visits": counts.visits,
        "unique_visitors": counts.unique_visitors,
        "new_visitors": counts.new_visitors,
        "returning_visitors": counts.returning_visitors,
        "returning_visits": counts.returning_visits,
        "unidentified_sightings": counts.unidentified_sightings,
        "returning_rate": returning_rate(counts.returning_visitors, counts.unique_visitors),
        "visits_per_visitor": visits_per_visitor(counts.visits, counts.unique_visitors),
        "dwell_seconds_avg": counts.dwell_seconds_avg,
        "dwell_seconds_median": counts.dwell_seconds_median,
        "dwell_distribution": dict(zip((b.name for b in DWELL_BUCKETS), counts.dwell_distribution, strict=True)),
    }
