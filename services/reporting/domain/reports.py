"""What a visitor report says, defined once: the dwell buckets and the figures derived from the counts.

Definitions (docs/reports.md has them with examples):
- a visit counts in the site-local period (hour or day in the site's IANA time zone) it started in;
- dwell is `last_seen_at - started_at` of a visit (a visit of one sighting dwells 0 s);
- returning rate is the share of a period's unique visitors that came back (had a returning visit);
- visits per visitor is the period's visits over its unique visitors.
"""

from dataclasses import dataclass


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
