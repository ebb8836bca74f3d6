import itertools
import uuid
from datetime import UTC, datetime, timedelta

from services.reporting.domain.visits import (
    PersonVisit,
    RemovedVisit,
    Sighting,
    VisitRules,
    diff_visits,
    sessionize_sightings,
)

RULES = VisitRules(gap=timedelta(minutes=30), lookback=timedelta(days=90))
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def sighting(minutes: float) -> Sighting:
    return Sighting(uuid.uuid4(), T0 + timedelta(minutes=minutes))


def test_sightings_closer_than_the_gap_are_one_visit() -> None:
    visits = sessionize_sightings([sighting(0), sighting(10), sighting(35)], RULES)
    assert len(visits) == 1
    assert visits[0].sightings == 3 and visits[0].last_seen_at == T0 + timedelta(minutes=35)
    assert not visits[0].is_returning


def test_a_gap_starts_a_returning_visit() -> None:
    visits = sessionize_sightings([sighting(0), sighting(31), sighting(24 * 60)], RULES)
    assert [v.sightings for v in visits] == [1, 1, 1]
    assert [v.is_returning for v in visits] == [False, True, True]


def test_an_earlier_visit_beyond_the_lookback_is_not_returning() -> None:
    visits = sessionize_sightings([sighting(0), sighting(91 * 24 * 60)], RULES)
    assert [v.is_returning for v in visits] == [False, False]


def test_order_of_arrival_does_not_change_the_visits() -> None:
    sightings = [sighting(m) for m in (0, 5, 50, 55, 2000)]
    expected = sessionize_sightings(sightings, RULES)
    for permutation in itertools.permutations(sightings):
        assert sessionize_sightings(list(permutation), RULES) == expected


def test_late_sighting_bridging_two_visits_merges_them() -> None:
    first, second = sighting(0), sighting(50)
    before = sessionize_sightings([first, second], RULES)
    after = sessionize_sightings([first, second, sighting(25)], RULES)
    assert len(before) == 2 and len(after) == 1
    assert after[0].visit_id == before[0].visit_id
    person = uuid.uuid4()
    changes = diff_visits([PersonVisit("s", person, v) for v in before], [PersonVisit("s", person, v) for v in after])
    assert changes.changed == (PersonVisit("s", person, after[0]),)
    assert changes.removed == (RemovedVisit("s", person, before[1].visit_id),)


def test_report_bounds_dates_are_whole_days_and_datetimes_exact() -> None:
    import pytest
    from fastapi import HTTPException

    from services.reporting.api import time_range

    assert time_range("2026-11-02", "2026-11-03") == (T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=2))
    assert time_range("2026-11-02T10:00:00", "2026-11-02T12:00:00+00:00") == (T0, T0 + timedelta(hours=2))
    with pytest.raises(HTTPException):
        time_range("2026-11-03", "2026-11-02")
    with pytest.raises(HTTPException):
        time_range("yesterday", "2026-11-02")
