"""Which crop date prefixes a retention cutoff covers."""

from datetime import date

from services.ingest.domain.retention import Expiry, date_parts_expiry

KEEP_FROM = date(2030, 5, 16)


def test_whole_years_months_and_days_before_the_cutoff_expire() -> None:
    assert date_parts_expiry(["2029"], KEEP_FROM) is Expiry.ALL
    assert date_parts_expiry(["2030", "04"], KEEP_FROM) is Expiry.ALL
    assert date_parts_expiry(["2030", "05", "15"], KEEP_FROM) is Expiry.ALL


def test_prefixes_straddling_the_cutoff_are_looked_into_and_later_ones_kept() -> None:
    assert date_parts_expiry(["2030"], KEEP_FROM) is Expiry.SOME
    assert date_parts_expiry(["2030", "05"], KEEP_FROM) is Expiry.SOME
    assert date_parts_expiry(["2030", "05", "16"], KEEP_FROM) is Expiry.NONE
    assert date_parts_expiry(["2031"], KEEP_FROM) is Expiry.NONE


def test_what_is_not_a_date_is_never_deleted() -> None:
    for parts in (["misc"], ["2030", "13"], ["2030", "02", "30"], ["2030", "xx"]):
        assert date_parts_expiry(parts, KEEP_FROM) is Expiry.NONE
