"""Figures the reports page derives from reporting's answers: its local periods laid out for the charts."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any


def local_day(period: Mapping[str, Any]) -> str:
    """The site-local date of a report period: `period_start` carries the site's offset, so its date is local."""
    return datetime.fromisoformat(period["period_start"]).date().isoformat()


def visits_by_hour_of_day(periods: Iterable[Mapping[str, Any]]) -> list[int]:
    """Hourly report periods folded onto the 24 hours of a day, in the site's local time (each `period_start`
    carries the site's offset; a DST end day's repeated hour counts twice in its hour)."""
    hours = [0] * 24
    for period in periods:
        hours[datetime.fromisoformat(period["period_start"]).hour] += int(period["visits"])
    return hours


DWELL_LABELS = {
    "under_1m": "under 1 min",
    "1m_5m": "1–5 min",
    "5m_15m": "5–15 min",
    "15m_30m": "15–30 min",
    "30m_1h": "30–60 min",
    "1h_2h": "1–2 h",
    "2h_plus": "over 2 h",
}
"""Reporting's dwell buckets (`dwell_distribution` keys), as the chart labels them."""


def dwell_bars(distribution: Mapping[str, int]) -> tuple[list[str], list[int]]:
    """Labels and visits of a report's dwell distribution, in reporting's bucket order."""
    return [DWELL_LABELS.get(name, name) for name in distribution], list(distribution.values())
