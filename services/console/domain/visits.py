"""Figures the reports page derives from visits until reporting serves them itself (issue 9: dwell and
occupancy endpoints): time spent per visit, and who is likely in the site now."""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

DWELL_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("under 5 min", 0, 5),
    ("5–15 min", 5, 15),
    ("15–30 min", 15, 30),
    ("30–60 min", 30, 60),
    ("over 1 h", 60, float("inf")),
)


def dwell_minutes(visit: Mapping[str, Any]) -> float:
    """From the visit's first to its last sighting (a visit seen once has 0: the camera saw it pass)."""
    started = datetime.fromisoformat(visit["started_at"])
    last = datetime.fromisoformat(visit["last_seen_at"])
    return max((last - started).total_seconds() / 60, 0.0)


def dwell_histogram(visits: Iterable[Mapping[str, Any]]) -> list[int]:
    """How many visits fall in each of DWELL_BUCKETS."""
    counts = [0] * len(DWELL_BUCKETS)
    for visit in visits:
        minutes = dwell_minutes(visit)
        index = next(i for i, (_, low, high) in enumerate(DWELL_BUCKETS) if low <= minutes < high)
        counts[index] += 1
    return counts


def median_dwell(visits: Iterable[Mapping[str, Any]]) -> float | None:
    minutes = sorted(dwell_minutes(visit) for visit in visits)
    if not minutes:
        return None
    middle = len(minutes) // 2
    return minutes[middle] if len(minutes) % 2 else (minutes[middle - 1] + minutes[middle]) / 2


def present_now(visits: Iterable[Mapping[str, Any]], now: datetime, visit_gap: timedelta) -> int:
    """Visits still open at `now`: last seen within the visit gap, so the person may not have left yet."""
    return sum(now - datetime.fromisoformat(visit["last_seen_at"]) < visit_gap for visit in visits)


def visits_by_hour_of_day(periods: Iterable[Mapping[str, Any]]) -> list[int]:
    """Hourly report periods folded onto the 24 hours of a day (UTC, as reporting's periods are)."""
    hours = [0] * 24
    for period in periods:
        hours[datetime.fromisoformat(period["period_start"]).hour] += int(period["visits"])
    return hours
