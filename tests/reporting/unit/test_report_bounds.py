"""Report bounds at the calendar's edges (found by the fuzz lane: each was an OverflowError, a 500)."""

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from services.reporting.api import parse_bound, time_range


@pytest.mark.parametrize(
    ("start", "end", "bad"),
    [
        ("9999-12-31", "9999-12-31", "to"),  # the whole last day ends after datetime.max
        ("0001-01-01T00:00:00+14:00", "0001-01-02", "from"),  # before datetime.min in UTC
        ("9999-12-31T23:00:00-14:00", "9999-12-31T23:59:59-14:00", "from"),  # after datetime.max in UTC
    ],
)
def test_a_bound_the_calendar_cannot_hold_in_utc_is_refused_with_the_reason(start: str, end: str, bad: str) -> None:
    with pytest.raises(HTTPException) as refused:
        time_range(start, end)
    assert refused.value.status_code == 422
    assert refused.value.detail == f"`{bad}` is outside the dates a report can cover (years 1-9999 UTC)"


def test_an_offset_bound_is_read_in_utc() -> None:
    assert parse_bound("2026-10-01T08:00:00+02:00", "from", is_end=False) == datetime(2026, 10, 1, 6, tzinfo=UTC)
    assert parse_bound("2026-10-01", "to", is_end=True) == datetime(2026, 10, 2, tzinfo=UTC)
