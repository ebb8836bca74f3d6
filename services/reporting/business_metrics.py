"""Business figures as Prometheus gauges, refreshed every `business_metrics_seconds`: per registered site, its
visits, visitors and returning visits of the current local day, the returning rate, the dwell (mean, median and
a distribution) and the visits open now. The Grafana dashboard `revisit-business.json` charts them.

Labels are the tenant and site (and a dwell bound): at most `business_metrics_max_sites` sites are exported
(in tenant, site order), so a tenant registering thousands of sites cannot flood Prometheus; the count left
out is exported beside them. Every replica exports the same values: dashboards take `max` per site."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from itertools import groupby

from prometheus_client import Counter, Gauge

from services.common.logging import get_logger
from services.reporting.adapters.visit_pages import DWELL_BUCKETS, SiteDay, SiteFigures, VisitPages
from services.reporting.domain.sites import SiteZones, local_day

log = get_logger(__name__)
SITE = ["tenant", "site"]
VISITS_TODAY = Gauge("revisit_reporting_site_visits_today", "Visits that started in the site's local day.", SITE)
VISITORS_TODAY = Gauge(
    "revisit_reporting_site_visitors_today", "Distinct persons with a visit in the site's local day.", SITE
)
RETURNING_VISITS_TODAY = Gauge(
    "revisit_reporting_site_returning_visits_today", "Returning visits that started in the site's local day.", SITE
)
RETURNING_RATE_TODAY = Gauge(
    "revisit_reporting_site_returning_rate_today",
    "Returning visits / visits of the site's local day (0 if none).",
    SITE,
)
OCCUPANCY = Gauge("revisit_reporting_site_occupancy", "Visits open now: last seen less than the visit gap ago.", SITE)
DWELL_TODAY = Gauge(
    "revisit_reporting_site_dwell_today_seconds",
    "Dwell (last sighting minus first) of the local day's visits, by statistic (mean, median).",
    [*SITE, "statistic"],
)
DWELL_DISTRIBUTION_TODAY = Gauge(
    "revisit_reporting_site_dwell_today_visits",
    "Visits of the local day whose dwell is at most `le` seconds (cumulative, as a histogram's buckets).",
    [*SITE, "le"],
)
SITES = Gauge("revisit_reporting_business_sites", "Registered sites, exported or left out by the cap.", ["state"])
REFRESHED = Gauge("revisit_reporting_business_refreshed_timestamp_seconds", "When the figures were last refreshed.")
REFRESH_FAILURES = Counter(
    "revisit_reporting_business_refresh_failures_total", "Refreshes that failed (logged with the error)."
)
SITE_GAUGES = (VISITS_TODAY, VISITORS_TODAY, RETURNING_VISITS_TODAY, RETURNING_RATE_TODAY, OCCUPANCY)


class BusinessMetrics:
    """The gauges of the sites exported last time, so a site that left the registry (or the cap) is removed."""

    def __init__(self, pages: VisitPages, zones: SiteZones, gap: timedelta, max_sites: int) -> None:
        self._pages, self._zones, self._gap, self._max_sites = pages, zones, gap, max_sites
        self._exported: set[tuple[str, str]] = set()

    async def refresh(self, now: datetime) -> None:
        """Query every exported site's figures (one query per tenant) and set the gauges."""
        sites = self._zones.all_sites()
        exported = sites[: self._max_sites]
        SITES.labels("exported").set(len(exported))
        SITES.labels("over_cap").set(len(sites) - len(exported))
        if len(sites) > len(exported):
            log.warning("business_metrics_sites_over_cap", sites=len(sites), exported=len(exported))
        current: set[tuple[str, str]] = set()
        for tenant_id, tenant_sites in groupby(exported, key=lambda entry: entry[0]):
            days = [SiteDay(site_id, *local_day(now, zone)) for _, site_id, zone in tenant_sites]
            for figures in await self._pages.site_figures(tenant_id, days, now, self._gap):
                _set_site(tenant_id, figures)
                current.add((tenant_id, figures.site_id))
        for tenant_id, site_id in self._exported - current:
            _remove_site(tenant_id, site_id)
        self._exported = current
        REFRESHED.set(now.timestamp())

    async def refresh_every(self, seconds: float) -> None:
        """Refresh now and then every `seconds`; a failed refresh is logged and counted, and the next one runs."""
        while True:
            started = time.monotonic()
            try:
                await self.refresh(datetime.now(UTC))
            except Exception as error:  # Postgres away for a while: the figures go stale, visibly, and recover
                REFRESH_FAILURES.inc()
                log.error("business_metrics_refresh_failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))


@asynccontextmanager
async def refreshed_business_metrics(metrics: BusinessMetrics, seconds: float) -> AsyncIterator[None]:
    """Keep the figures fresh in the background while the service runs."""
    task = asyncio.create_task(metrics.refresh_every(seconds))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _set_site(tenant_id: str, figures: SiteFigures) -> None:
    site = (tenant_id, figures.site_id)
    VISITS_TODAY.labels(*site).set(figures.visits)
    VISITORS_TODAY.labels(*site).set(figures.visitors)
    RETURNING_VISITS_TODAY.labels(*site).set(figures.returning_visits)
    RETURNING_RATE_TODAY.labels(*site).set(figures.returning_visits / figures.visits if figures.visits else 0.0)
    OCCUPANCY.labels(*site).set(figures.open_now)
    DWELL_TODAY.labels(*site, "mean").set(figures.dwell_mean_seconds)
    DWELL_TODAY.labels(*site, "median").set(figures.dwell_median_seconds)
    for bound, visits in figures.dwell_at_most.items():
        DWELL_DISTRIBUTION_TODAY.labels(*site, str(bound)).set(visits)
    DWELL_DISTRIBUTION_TODAY.labels(*site, "+Inf").set(figures.visits)


def _remove_site(tenant_id: str, site_id: str) -> None:
    for gauge in SITE_GAUGES:
        gauge.remove(tenant_id, site_id)
    for statistic in ("mean", "median"):
        DWELL_TODAY.remove(tenant_id, site_id, statistic)
    for bound in (*(str(b) for b in DWELL_BUCKETS), "+Inf"):
        DWELL_DISTRIBUTION_TODAY.remove(tenant_id, site_id, bound)
