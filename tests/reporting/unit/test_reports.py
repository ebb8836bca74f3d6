"""The report figures defined in the domain: dwell buckets and the median from per-minute counts, a visit's local
date, and contributions that cancel."""

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.reporting.domain.reports import (
    DWELL_BUCKETS,
    contribution,
    dwell_bucket_index,
    dwell_from_minutes,
    net_contributions,
    returning_rate,
    visits_per_visitor,
)


def test_dwell_buckets_are_half_open_and_the_last_has_no_end() -> None:
    assert [dwell_bucket_index(s) for s in (0, 59.9, 60, 1199, 1200, 7199, 7200, 10**6)] == [0, 0, 1, 3, 3, 5, 6, 6]
    assert DWELL_BUCKETS[3].name == "15m_30m"


def test_median_from_minutes_is_the_median_of_whole_minute_dwells() -> None:
    median, distribution = dwell_from_minutes({0: 1, 20: 1, 45: 1})  # 0 s, 20 min, 45 min
    assert median == 20 * 60
    assert dwell_from_minutes({0: 1, 20: 1})[0] == 10 * 60  # two visits: the middle of their minutes
    assert dwell_from_minutes({3: 2, 7: 0, 9: 1, 11: 1})[0] == 6 * 60  # minutes 3, 3, 9, 11; an empty minute
    assert dwell_from_minutes({5: 4})[0] == 5 * 60
    assert distribution == (1, 0, 0, 1, 1, 0, 0)
    assert dwell_from_minutes({}) == (None, (0,) * len(DWELL_BUCKETS))


def test_a_visit_counts_on_its_sites_local_date() -> None:
    at = datetime(2026, 11, 3, 3, 30, tzinfo=UTC)
    person = uuid.uuid4()
    new_york = contribution("s", person, at, at + timedelta(minutes=20), False, ZoneInfo("America/New_York"))
    berlin = contribution("s", person, at, at, True, ZoneInfo("Europe/Berlin"))
    assert (new_york.day, new_york.month, new_york.minute, new_york.dwell_seconds) == (
        date(2026, 11, 2),
        date(2026, 11, 1),
        20,
        1200,
    )
    assert berlin.day == date(2026, 11, 3)


def test_contributions_in_both_cancel_and_the_rest_keep_their_sign() -> None:
    at, person, utc = datetime(2026, 11, 3, 12, tzinfo=UTC), uuid.uuid4(), ZoneInfo("UTC")
    kept = contribution("s", person, at, at, False, utc)
    grown = contribution("s", person, at, at + timedelta(minutes=5), False, utc)
    changes = net_contributions([kept, kept], [kept, grown])
    assert sorted((c.minute, c.sign) for c in changes) == [(0, -1), (5, 1)]


def test_rates_are_none_without_visitors() -> None:
    assert returning_rate(0, 0) is None and visits_per_visitor(0, 0) is None
    assert returning_rate(1, 4) == 0.25 and visits_per_visitor(6, 4) == 1.5
