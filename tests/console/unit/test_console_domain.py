"""The console's pure parts: chart geometry, reporting's local periods and dwell laid out, the gallery filter, the
timeline."""

from datetime import UTC, date, datetime

import pytest

from services.console.adapters.reports import ReportData
from services.console.domain.charts import HEIGHT, Series, bar_chart, nice_ceiling
from services.console.domain.persons import GalleryFilter, day_of, timeline_by_day
from services.console.domain.visits import dwell_bars, local_day, visits_by_hour_of_day
from services.console.pages.reports import charts_of, local_today


def test_nice_ceiling_rounds_up_to_a_readable_axis_top() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 11, 18, 26, 230)] == [1, 1, 5, 10, 20, 20, 50, 250]


def test_stacked_bars_reach_the_total_and_never_leave_the_plot() -> None:
    chart = bar_chart("new and returning", ["d1", "d2"], [Series("new", "bar", [11, 0]), Series("ret", "r", [0, 7])])
    assert [bar.title for bar in chart.bars] == ["d1: new 11", "d2: ret 7"]  # zero-height bars are left out
    top = chart.ticks[-1]
    assert top.label == "20" and all(top.y <= bar.y and bar.y + bar.height <= chart.baseline for bar in chart.bars)
    assert chart.bars[0].height / chart.bars[1].height == pytest.approx(11 / 7)
    assert chart.description == "d1: new 11, ret 0; d2: new 0, ret 7"


def test_labels_thin_out_so_they_never_overlap() -> None:
    hours = bar_chart("hours", [f"{h:02d}" for h in range(24)], [Series("visits", "bar", [1] * 24)])
    assert [label.text for label in hours.labels] == [f"{h:02d}" for h in range(0, 24, 2)]
    empty = bar_chart("nothing", [], [Series("visits", "bar", [])])
    assert empty.bars == [] and empty.description == "no data" and empty.height == HEIGHT


def test_dwell_distribution_becomes_labelled_bars_in_reporting_order() -> None:
    distribution = {"under_1m": 2, "1m_5m": 0, "5m_15m": 3, "15m_30m": 1, "30m_1h": 0, "1h_2h": 0, "2h_plus": 4}
    labels, visits = dwell_bars(distribution)
    assert labels[0] == "under 1 min" and labels[-1] == "over 2 h" and visits == [2, 0, 3, 1, 0, 0, 4]


def test_periods_are_read_in_the_site_local_time_they_carry() -> None:
    periods = [
        {"period_start": "2026-11-19T10:00:00-05:00", "visits": 11},  # 15:00 UTC: 10:00 in New York
        {"period_start": "2026-11-20T10:00:00-05:00", "visits": 7},
        {"period_start": "2026-11-01T01:00:00-04:00", "visits": 1},  # a DST end day: 01:00 twice
        {"period_start": "2026-11-01T01:00:00-05:00", "visits": 2},
    ]
    hours = visits_by_hour_of_day(periods)
    assert hours[10] == 18 and hours[1] == 3 and hours[15] == 0 and sum(hours) == 21
    assert local_day({"period_start": "2026-11-02T00:00:00-05:00"}) == "2026-11-02"  # 05:00 UTC, still Nov 2


def test_today_is_the_site_local_date() -> None:
    sites = [{"site_id": "ny", "time_zone": "America/New_York"}, {"site_id": "nowhere", "time_zone": "Mars/Base"}]
    late_evening_in_new_york = datetime(2026, 11, 21, 3, 30, tzinfo=UTC)
    assert local_today(sites, "ny", late_evening_in_new_york) == date(2026, 11, 20)
    assert local_today(sites, "nowhere", late_evening_in_new_york) == date(2026, 11, 21)
    assert local_today(sites, "unknown", late_evening_in_new_york) == date(2026, 11, 21)


def test_gallery_filter_by_first_site_and_days_seen() -> None:
    person = {
        "first_site_id": "store-1",
        "first_seen_at": "2026-11-19T10:00:00+00:00",
        "last_seen_at": "2026-11-20T10:00:00+00:00",
    }
    assert GalleryFilter().keeps(person)
    assert GalleryFilter("store-1", date(2026, 11, 20), date(2026, 11, 20)).keeps(person)
    assert not GalleryFilter("store-2").keeps(person)
    assert not GalleryFilter(first=date(2026, 11, 21)).keeps(person)
    assert not GalleryFilter(last=date(2026, 11, 18)).keeps(person)
    assert day_of("2026-11-20") == date(2026, 11, 20) and day_of("") is None and day_of("20/11/2026") is None


def test_timeline_groups_sightings_by_day_newest_first() -> None:
    sightings = [
        {"captured_at": f"2026-11-{day}T{hour}:00:00+00:00"} for day, hour in (("20", "11"), ("20", "09"), ("19", "10"))
    ]
    days = timeline_by_day(sightings)
    assert [(d.day.day, len(d.sightings)) for d in days] == [(20, 2), (19, 1)]


def test_report_charts_use_reportings_local_days_and_dwell_buckets() -> None:
    def period(start: str, visits: int) -> dict:
        return {"period_start": start, "visits": visits, "unique_visitors": visits, "new_visitors": visits}

    by_day = {
        "periods": [
            {**period("2026-11-01T00:00:00-04:00", 3), "returning_visitors": 1},  # a DST end day in New York
            {**period("2026-11-02T00:00:00-05:00", 2), "returning_visitors": 0},
        ],
        "totals": {"dwell_distribution": {"under_1m": 1, "1m_5m": 0, "5m_15m": 4, "15m_30m": 0, "30m_1h": 0,
                                          "1h_2h": 0, "2h_plus": 0}},
    }  # fmt: skip
    by_hour = {"periods": [period("2026-11-01T01:00:00-04:00", 2), period("2026-11-01T01:00:00-05:00", 1)]}
    data = ReportData(by_day, by_hour, {"open_now": 1, "time_zone": "America/New_York"})
    visitors, hours, _, dwell = charts_of(data)
    assert [label.text for label in visitors.labels] == ["2026-11-01", "2026-11-02"]
    assert "01: visits 3" in hours.description and "(local time)" in hours.title
    assert dwell.description.startswith("under 1 min: visits 1") and "5–15 min: visits 4" in dwell.description
