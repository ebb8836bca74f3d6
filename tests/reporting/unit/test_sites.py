"""Reporting's copy of the registry's sites, and report bounds read in a site's time zone."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from schemas.registry import CameraEntry, SiteEntry
from services.reporting.api import parse_bound, time_range
from services.reporting.domain.sites import SiteNotRegistered, SiteZones

NEW_YORK = ZoneInfo("America/New_York")


def site(tenant: str, site_id: str, time_zone: str) -> bytes:
    return SiteEntry(tenant_id=tenant, site_id=site_id, name=site_id, time_zone=time_zone).to_json_bytes()


def test_a_registered_site_has_its_zone_and_a_deleted_one_is_not_registered() -> None:
    zones = SiteZones()
    zones.apply("t1.site.nyc", site("t1", "nyc", "America/New_York"))
    zones.apply("t1.camera.door", CameraEntry(tenant_id="t1", camera_id="door", site_id="nyc").to_json_bytes())
    zones.apply("t1.models", b"not a site: ignored")
    assert zones.zone_of("t1", "nyc") == NEW_YORK
    assert zones.sites_of("t1") == {"nyc": NEW_YORK}
    with pytest.raises(SiteNotRegistered, match="site nyc is not registered for tenant t2"):
        zones.zone_of("t2", "nyc")  # another tenant's site of the same name
    zones.apply("t1.site.nyc", None)
    with pytest.raises(SiteNotRegistered, match=r"site nyc is not registered for tenant t1 \(PUT /v1/sites/nyc\)"):
        zones.zone_of("t1", "nyc")


def test_a_site_value_of_another_key_or_shape_is_refused() -> None:
    zones = SiteZones()
    with pytest.raises(ValueError, match="names site paris"):
        zones.apply("t1.site.nyc", site("t1", "paris", "Europe/Paris"))
    with pytest.raises(ValueError, match="is invalid"):
        zones.apply("t1.site.nyc", b'{"site_id": "nyc"}')
    assert zones.sites_of("t1") == {}


def test_a_date_is_the_sites_local_day() -> None:
    assert parse_bound("2026-07-14", "from", False, NEW_YORK) == datetime(2026, 7, 14, 4, tzinfo=UTC)  # EDT
    assert parse_bound("2026-07-14", "to", True, NEW_YORK) == datetime(2026, 7, 15, 4, tzinfo=UTC)
    assert parse_bound("2026-12-14", "from", False, NEW_YORK) == datetime(2026, 12, 14, 5, tzinfo=UTC)  # EST


def test_a_datetime_without_offset_is_local_and_one_with_an_offset_is_kept() -> None:
    assert parse_bound("2026-07-14T09:00:00", "from", False, NEW_YORK) == datetime(2026, 7, 14, 13, tzinfo=UTC)
    assert parse_bound("2026-07-14T09:00:00+00:00", "from", False, NEW_YORK) == datetime(2026, 7, 14, 9, tzinfo=UTC)


@pytest.mark.parametrize(("day", "hours"), [("2026-03-08", 23), ("2026-11-01", 25), ("2026-07-14", 24)])
def test_a_local_day_over_a_dst_change_is_23_or_25_hours(day: str, hours: int) -> None:
    first, last = time_range(day, day, NEW_YORK)
    assert (last - first).total_seconds() == hours * 3600


def test_400_local_days_with_an_extra_autumn_hour_are_not_refused_as_too_long() -> None:
    first, last = time_range("2025-11-01", "2026-12-05", NEW_YORK)  # two DST ends, one start: 400 days and 1 hour
    assert (last - first).total_seconds() == 400 * 86400 + 3600
