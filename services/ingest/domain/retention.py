"""Which crop prefixes a retention cutoff covers. Crop keys are `<tenant>/<site>/<yyyy>/<mm>/<dd>/<event>.jpg`
(`validation.crop_key`, the UTC day of capture), so whole years, months or days are listed and deleted by prefix
without reading every key of the bucket."""

import calendar
from datetime import date
from enum import Enum


class Expiry(Enum):
    ALL = "all"  # every crop under the prefix is older than the cutoff
    NONE = "none"  # none is (or the prefix is not a date we understand: never delete what we cannot date)
    SOME = "some"  # look one level deeper


def date_parts_expiry(parts: list[str], keep_from: date) -> Expiry:
    """Whether the crops under a date prefix (`["2024"]`, `["2024", "05"]`, `["2024", "05", "17"]`) were all
    captured before `keep_from`, none were, or some."""
    try:
        numbers = [int(part) for part in parts]
        year, month, day = [*numbers, 0, 0][:3]
        first = date(year, month or 1, day or 1)
        last = date(year, month or 12, day or calendar.monthrange(year, month or 12)[1])
    except ValueError:
        return Expiry.NONE
    if last < keep_from:
        return Expiry.ALL
    if first >= keep_from:
        return Expiry.NONE
    return Expiry.SOME
