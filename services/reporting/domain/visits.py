"""Visits from sightings: pure, so late, out-of-order and duplicate sightings are handled by recomputing.

The visits of one person at one site are a function of that person's sightings there: whatever order
the sightings arrive in, recomputing gives the same visits with the same ids.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.ids import derive_event_id


@dataclass(frozen=True)
class Sighting:
    event_id: uuid.UUID
    captured_at: datetime


@dataclass(frozen=True)
class Visit:
    visit_id: uuid.UUID
    started_at: datetime
    last_seen_at: datetime
    sightings: int
    is_returning: bool


@dataclass(frozen=True)
class VisitRules:
    gap: timedelta
    lookback: timedelta


def sessionize_sightings(sightings: Sequence[Sighting], rules: VisitRules) -> list[Visit]:
    """Group sightings closer than `rules.gap` into visits; a visit is returning when the person's
    previous visit ended within `rules.lookback` of its start. Visit ids derive from the first sighting."""
    ordered = sorted(sightings, key=lambda s: (s.captured_at, s.event_id))
    groups: list[list[Sighting]] = []
    for sighting in ordered:
        if groups and sighting.captured_at - groups[-1][-1].captured_at < rules.gap:
            groups[-1].append(sighting)
        else:
            groups.append([sighting])
    visits: list[Visit] = []
    for group in groups:
        started_at = group[0].captured_at
        returning = bool(visits) and started_at - visits[-1].last_seen_at <= rules.lookback
        visits.append(
            Visit(
                visit_id=derive_event_id(group[0].event_id, "visit"),
                started_at=started_at,
                last_seen_at=group[-1].captured_at,
                sightings=len(group),
                is_returning=returning,
            )
        )
    return visits


def changed_visits(before: Sequence[Visit], after: Sequence[Visit]) -> list[Visit]:
    """The visits of `after` that are new or differ from `before`: what to announce."""
    previous = set(before)
    return [visit for visit in after if visit not in previous]
