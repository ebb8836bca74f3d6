"""Visits from sightings: pure, so late, out-of-order and duplicate sightings are handled by recomputing.

The visits of one person at one site are a function of that person's sightings there: whatever order
the sightings arrive in, recomputing gives the same visits with the same ids. New sightings only recompute
their neighbourhood (`refold_neighbourhood`): adding sightings can merge visits, never split them, so only
the visits within a gap of them change, and the `is_returning` of the one visit after them.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
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


def sessionize_sightings(
    sightings: Sequence[Sighting], rules: VisitRules, previous_end: datetime | None = None
) -> list[Visit]:
    """Group sightings closer than `rules.gap` into visits; a visit is returning when the person's
    previous visit ended within `rules.lookback` of its start. Visit ids derive from the first sighting.

    `previous_end` is when the person's visit before these sightings ended, if they are not all of them."""
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
        returning = is_returning_after(visits[-1].last_seen_at if visits else previous_end, started_at, rules)
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


def is_returning_after(previous_end: datetime | None, started_at: datetime, rules: VisitRules) -> bool:
    """A visit is returning when the person's previous visit (at the site) ended within the lookback."""
    return previous_end is not None and started_at - previous_end <= rules.lookback


@dataclass(frozen=True)
class Neighbourhood:
    """What new sightings of one person at one site can change, as the store reads it after storing them.

    With `lo` and `hi` from `neighbourhood_bounds`: `previous` is the person's last visit there that ended by
    `lo`, `following` the first that starts at or after `hi`, `between` the visits in between (the only ones
    the new sightings can merge with: visits are at least a gap apart, so a sighting joins only visits within
    a gap of it), and `sightings` every sighting after `previous` and before `following`, the new ones too."""

    previous: Visit | None
    between: tuple[Visit, ...]
    sightings: tuple[Sighting, ...]
    following: Visit | None


def neighbourhood_bounds(new: Sequence[Sighting], rules: VisitRules) -> tuple[datetime, datetime]:
    """(lo, hi) of `Neighbourhood`: a gap before the earliest new sighting and a gap after the latest."""
    moments = [sighting.captured_at for sighting in new]
    return min(moments) - rules.gap, max(moments) + rules.gap


@dataclass(frozen=True)
class Refold:
    """The visits that replace `Neighbourhood.between`, and `following` with its `is_returning` recomputed."""

    visits: tuple[Visit, ...]
    following: Visit | None


def refold_neighbourhood(hood: Neighbourhood, rules: VisitRules) -> Refold:
    """Sessionize the neighbourhood's sightings, the first visit returning or not after `previous`; of the
    visits after it only `following` can change (its predecessor may now end later)."""
    previous_end = hood.previous.last_seen_at if hood.previous else None
    visits = sessionize_sightings(hood.sightings, rules, previous_end)
    following = hood.following
    if following is not None:
        end = visits[-1].last_seen_at if visits else previous_end
        following = replace(following, is_returning=is_returning_after(end, following.started_at, rules))
    return Refold(tuple(visits), following)


@dataclass(frozen=True)
class PersonSighting:
    """A stored sighting with the person and site it belongs to."""

    site_id: str
    person_id: uuid.UUID
    sighting: Sighting


@dataclass(frozen=True)
class PersonVisit:
    """A visit with its site and person: what `VisitRecord` announces."""

    site_id: str
    person_id: uuid.UUID
    visit: Visit


@dataclass(frozen=True)
class RemovedVisit:
    """A visit that no longer exists: only its ids, so nothing more about an erased person is kept."""

    site_id: str
    person_id: uuid.UUID
    visit_id: uuid.UUID


@dataclass(frozen=True)
class VisitChanges:
    """What to announce after sightings changed: visits new or different, and visits gone."""

    changed: tuple[PersonVisit, ...] = ()
    removed: tuple[RemovedVisit, ...] = ()


def visits_of_sightings(sightings: Iterable[PersonSighting], rules: VisitRules) -> list[PersonVisit]:
    """Every person's visits at every site, each (site, person) sessionized on its own."""
    grouped: dict[tuple[str, uuid.UUID], list[Sighting]] = defaultdict(list)
    for placed in sightings:
        grouped[(placed.site_id, placed.person_id)].append(placed.sighting)
    return [
        PersonVisit(site_id, person_id, visit)
        for (site_id, person_id), group in sorted(grouped.items())
        for visit in sessionize_sightings(group, rules)
    ]


def diff_visits(before: Sequence[PersonVisit], after: Sequence[PersonVisit]) -> VisitChanges:
    """Visits of `after` that are new or differ (another person counts as different), and the visit ids of
    `before` that `after` no longer has. A visit that moved to another person is changed, not removed: its
    id lives on, so a consumer keyed on the visit id replaces it."""
    previous = set(before)
    remaining = {placed.visit.visit_id for placed in after}
    return VisitChanges(
        changed=tuple(placed for placed in after if placed not in previous),
        removed=tuple(
            RemovedVisit(placed.site_id, placed.person_id, placed.visit.visit_id)
            for placed in before
            if placed.visit.visit_id not in remaining
        ),
    )
