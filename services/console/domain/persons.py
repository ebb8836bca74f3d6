"""Pure helpers of the persons pages: the gallery's filter and a person's timeline by day."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from typing import Any


@dataclass(frozen=True)
class GalleryFilter:
    """Keep persons first seen at `site_id` (if given) and seen at some time between `first` and `last` days."""

    site_id: str | None = None
    first: date | None = None
    last: date | None = None

    def keeps(self, person: Mapping[str, Any]) -> bool:
        if self.site_id and person["first_site_id"] != self.site_id:
            return False
        first_seen = datetime.fromisoformat(person["first_seen_at"]).date()
        last_seen = datetime.fromisoformat(person["last_seen_at"]).date()
        if self.first and last_seen < self.first:
            return False
        return not (self.last and first_seen > self.last)


def day_of(text: str | None) -> date | None:
    """A `YYYY-MM-DD` form field, or None when empty or malformed (the filter is then not applied)."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class TimelineDay:
    day: date
    sightings: list[Mapping[str, Any]]


def timeline_by_day(sightings: Iterable[Mapping[str, Any]]) -> list[TimelineDay]:
    """Sightings (newest first, as identity lists them) grouped by their UTC day, newest day first."""

    def day(sighting: Mapping[str, Any]) -> date:
        return datetime.fromisoformat(sighting["captured_at"]).date()

    return [TimelineDay(key, list(group)) for key, group in groupby(sightings, key=day)]
