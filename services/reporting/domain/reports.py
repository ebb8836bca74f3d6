"""What a visitor report says, defined once: the dwell buckets and the figures derived from the counts.

Definitions (docs/reports.md has them with examples):
- a visit counts in the site-local period (hour or day in the site's IANA time zone) it started in;
- dwell is `last_seen_at - started_at` of a visit (a visit of one sighting dwells 0 s);
- returning rate is the share of a period's unique visitors that came back (had a returning visit);
- visits per visitor is the period's visits over its unique visitors.
"""

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DwellBucket:
    """Visits that dwelt at least `min_seconds` and less than `max_seconds` (None: no upper bound)."""

    name: str
    min_seconds: int
    max_seconds: int | None


DWELL_BUCKETS = (
    DwellBucket("under_1m", 0, 60),
    DwellBucket("1m_5m", 60, 300),
    DwellBucket("5m_15m", 300, 900),
    DwellBucket("15m_30m", 900, 1800),
    DwellBucket("30m_1h", 1800, 3600),
    DwellBucket("1h_2h", 3600, 7200),
    DwellBucket("2h_plus", 7200, None),
)
"""Fixed buckets, so distributions of different periods, sites and tenants compare bucket by bucket."""


def dwell_bucket_index(dwell_seconds: float) -> int:
    """The bucket a visit's dwell falls in."""
    for index, bucket in enumerate(DWELL_BUCKETS):
        if bucket.max_seconds is None or dwell_seconds < bucket.max_seconds:
            return index
    raise AssertionError("the last bucket has no upper bound")


def returning_rate(returning_visitors: int, unique_visitors: int) -> float | None:
    """Share of the unique visitors who came back; None when nobody came (not 0: nothing to divide)."""
    return returning_visitors / unique_visitors if unique_visitors else None


def visits_per_visitor(visits: int, unique_visitors: int) -> float | None:
    """How often a visitor came in the period, on average; None when nobody came."""
    return visits / unique_visitors if unique_visitors else None


DWELL_MINUTES = 240
"""Rollups count dwell per whole minute up to this; longer visits share the last minute's row."""


@dataclass(frozen=True)
class Contribution:
    """What one visit adds to (sign +1) or takes from (-1) the rollups: its site's local date, and the rest."""

    site_id: str
    person_id: uuid.UUID
    day: date
    is_returning: bool
    dwell_seconds: float
    sign: int

    @property
    def month(self) -> date:
        return self.day.replace(day=1)

    @property
    def minute(self) -> int:
        return min(int(self.dwell_seconds // 60), DWELL_MINUTES)


def contribution(
    site_id: str, person_id: uuid.UUID, started_at: datetime, last_seen_at: datetime, is_returning: bool, zone: ZoneInfo
) -> Contribution:
    """A visit's contribution (+1), on its local date in its site's zone."""
    dwell = (last_seen_at - started_at).total_seconds()
    return Contribution(site_id, person_id, started_at.astimezone(zone).date(), is_returning, dwell, 1)


def net_contributions(removed: Iterable[Contribution], added: Iterable[Contribution]) -> list[Contribution]:
    """`added` minus `removed`, the ones in both cancelled (a visit that only gained a sighting in the same minute
    of dwell changes no rollup)."""
    balance: Counter[Contribution] = Counter(added)
    balance.subtract(removed)
    return [replace(c, sign=count) for c, count in balance.items() if count != 0]


def dwell_from_minutes(minutes: Mapping[int, int]) -> tuple[float | None, tuple[int, ...]]:
    """The median dwell to the minute and the `DWELL_BUCKETS` distribution, from visits counted per whole minute of
    dwell. The median is that of the visits' dwells in whole minutes (each rounded down to its minute; the two
    middle ones averaged when the count is even): never more than a minute below the exact median, and exact
    when dwells are whole minutes (0 s and 20 min make 10 min, as the visits themselves say)."""
    distribution = [0] * len(DWELL_BUCKETS)
    for minute, visits in minutes.items():
        distribution[dwell_bucket_index(minute * 60)] += visits
    counted = sorted((minute, visits) for minute, visits in minutes.items() if visits > 0)
    total = sum(visits for _, visits in counted)
    if total <= 0:
        return None, tuple(distribution)
    return 30.0 * (_minute_of(counted, (total - 1) // 2) + _minute_of(counted, total // 2)), tuple(distribution)


def _minute_of(counted: list[tuple[int, int]], index: int) -> int:
    """The minute of the `index`-th visit (from 0) in order of dwell."""
    seen = 0
    for minute, visits in counted:
        seen += visits
        if seen > index:
            return minute
    raise AssertionError("the index lies within the counts")
