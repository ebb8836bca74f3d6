"""Reporting's REST routes for analysts: visitor counts and visits, as JSON or CSV."""

import csv
import io
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from schemas.base import TOKEN_PATTERN
from services.common.auth import Principal, Role, require_roles
from services.reporting.adapters.postgres import Counts, Granularity, ReportRow, VisitStore
from services.reporting.domain.reports import DWELL_BUCKETS, returning_rate, visits_per_visitor

router = APIRouter(prefix="/v1", tags=["reports"])
Analyst = Annotated[Principal, Depends(require_roles(Role.ANALYST, Role.ADMIN, Role.VIEWER))]
SiteId = Annotated[str, Query(pattern=TOKEN_PATTERN, description="Site to report on")]
From = Annotated[
    str,
    Query(
        alias="from",
        description="Start: a date YYYY-MM-DD (00:00 UTC) or an ISO datetime",
        examples=["2026-10-01", "2026-10-01T08:00:00+02:00"],
    ),
]
To = Annotated[
    str,
    Query(
        alias="to",
        description="End: a date YYYY-MM-DD (whole day, included) or an exclusive datetime",
        examples=["2026-10-07", "2026-10-01T20:00:00+02:00"],
    ),
]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]


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
    started_at: datetime
    last_seen_at: datetime
    sightings: int
    is_returning: bool


def parse_bound(text: str, name: str, is_end: bool) -> datetime:
    """A date means a whole UTC day (so an end date is included); a datetime is used as given (UTC if naive).
    A bound the calendar cannot hold in UTC (the day after 9999-12-31, 0001-01-01 at +14:00) is refused."""
    try:
        if len(text) == len("YYYY-MM-DD"):
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if is_end else day, time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"`{name}` is not an ISO date or datetime"
        ) from error
    except OverflowError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"`{name}` is outside the dates a report can cover (years 1-9999 UTC)",
        ) from error


def time_range(start: str, end: str) -> tuple[datetime, datetime]:
    first, last = parse_bound(start, "from", is_end=False), parse_bound(end, "to", is_end=True)
    if last <= first:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "`to` must be after `from`")
    if last - first > timedelta(days=400):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a report covers at most 400 days")
    return first, last


@router.get("/reports/visitors", response_model=VisitorReport)
async def visitor_report(
    principal: Analyst,
    request: Request,
    site_id: SiteId,
    start: From,
    end: To,
    granularity: Annotated[Granularity, Query()] = "day",
    format: Format = "json",
) -> VisitorReport | Response:
    """Visits, unique, new and returning visitors, and unidentified sightings, per period at one site of the
    caller's tenant."""
    first, last = time_range(start, end)
    store: VisitStore = request.app.state.visit_store
    zone = ZoneInfo("UTC")  # until the site's own zone is read from the registry
    rows, totals = await store.visitor_report(principal.tenant_id, site_id, first, last, granularity, zone)
    periods = [_counts(row) for row in rows]
    if format == "csv":
        lines = [_flat_counts(p) for p in periods]
        return _csv_response(list(_flat_counts(_counts(totals))), lines, f"visitors_{site_id}.csv")
    return VisitorReport(
        site_id=site_id, granularity=granularity, start=first, end=last, totals=_counts(totals), periods=periods
    )


@router.get("/visits", response_model=list[VisitOut])
async def list_visits(
    principal: Analyst, request: Request, site_id: SiteId, start: From, end: To, format: Format = "json"
) -> list[VisitOut] | Response:
    """Every visit that started in the range at one site, oldest first."""
    first, last = time_range(start, end)
    store: VisitStore = request.app.state.visit_store
    visits = [
        VisitOut(person_id=person_id, **visit.__dict__)
        for person_id, visit in await store.list_visits(principal.tenant_id, site_id, first, last)
    ]
    if format == "csv":
        lines = [v.model_dump(mode="json") for v in visits]
        return _csv_response(list(VisitOut.model_fields), lines, f"visits_{site_id}.csv")
    return visits


def _counts(row: ReportRow) -> VisitorCounts:
    values = row.__dict__ | {
        "dwell_distribution": dict(zip((b.name for b in DWELL_BUCKETS), row.dwell_distribution, strict=True)),
        "returning_rate": returning_rate(row.returning_visitors, row.unique_visitors),
        "visits_per_visitor": visits_per_visitor(row.visits, row.unique_visitors),
    }
    return VisitorCounts(**values)


def _flat_counts(counts: VisitorCounts) -> dict[str, object]:
    """One CSV row: the dwell distribution as one column per bucket (`dwell_<bucket>`)."""
    values = counts.model_dump(mode="json", exclude={"dwell_distribution"})
    return values | {f"dwell_{name}": visits for name, visits in counts.dwell_distribution.items()}


def _csv_response(columns: list[str], rows: list[dict[str, object]], filename: str) -> Response:
    """The header row always comes first: an empty export is a file with its columns, not 0 bytes."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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
