"""Property: folding sightings in any order, in any batches, with duplicates, through `refold_neighbourhood`
gives exactly the visits `sessionize_sightings` gives for all of them at once."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.reporting.domain.visits import (
    Neighbourhood,
    Sighting,
    Visit,
    VisitRules,
    neighbourhood_bounds,
    refold_neighbourhood,
    sessionize_sightings,
)

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
RULES = VisitRules(gap=timedelta(minutes=30), lookback=timedelta(hours=3))
"""A short lookback, so that returning and new visits both occur in a few hours of sightings."""


class InMemoryVisits:
    """One person's sightings and visits at one site, read as the store's queries read them."""

    def __init__(self) -> None:
        self.sightings: dict[uuid.UUID, Sighting] = {}
        self.visits: list[Visit] = []

    def add(self, batch: list[Sighting]) -> None:
        new = [s for s in {s.event_id: s for s in batch}.values() if s.event_id not in self.sightings]
        if not new:
            return  # every one a redelivery: the store changes nothing
        self.sightings.update((s.event_id, s) for s in new)
        refold = refold_neighbourhood(self.neighbourhood(new), RULES)
        hood = self.neighbourhood(new)
        kept = [v for v in self.visits if v not in hood.between and v != hood.following]
        following = [refold.following] if refold.following else []
        self.visits = sorted([*kept, *refold.visits, *following], key=lambda v: v.started_at)

    def neighbourhood(self, new: list[Sighting]) -> Neighbourhood:
        lo, hi = neighbourhood_bounds(new, RULES)
        before = [v for v in self.visits if v.last_seen_at <= lo]
        after = [v for v in self.visits if v.started_at >= hi]
        previous, following = (before[-1] if before else None), (after[0] if after else None)
        floor = previous.last_seen_at if previous else datetime.min.replace(tzinfo=UTC)
        ceiling = following.started_at if following else datetime.max.replace(tzinfo=UTC)
        return Neighbourhood(
            previous=previous,
            between=tuple(v for v in self.visits if v not in before and v not in after),
            sightings=tuple(s for s in self.sightings.values() if floor < s.captured_at < ceiling),
            following=following,
        )


minutes = st.integers(min_value=0, max_value=12 * 60)
sighting_times = st.lists(minutes, min_size=1, max_size=40)


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[Sighting], list[list[Sighting]]]:
    """Distinct sightings (some at the same minute), and the batches they arrive in: shuffled, some twice."""
    offsets = draw(sighting_times)
    sightings = [Sighting(uuid.UUID(int=i + 1), START + timedelta(minutes=m)) for i, m in enumerate(offsets)]
    repeated = draw(st.lists(st.sampled_from(sightings), max_size=10))
    order = draw(st.permutations([*sightings, *repeated]))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=6)))
    bounds = [0, *cuts, len(order)]
    return sightings, [order[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=400, deadline=None)
@given(arrivals())
def test_any_order_batches_and_duplicates_give_the_visits_of_all_sightings(
    case: tuple[list[Sighting], list[list[Sighting]]],
) -> None:
    sightings, batches = case
    store = InMemoryVisits()
    for batch in batches:
        store.add(batch)
    assert store.visits == sessionize_sightings(sightings, RULES)


def test_a_late_sighting_merges_two_visits_and_the_next_visit_stops_returning() -> None:
    store = InMemoryVisits()
    first, second = Sighting(uuid.uuid4(), START), Sighting(uuid.uuid4(), START + timedelta(minutes=50))
    late = Sighting(uuid.uuid4(), START + timedelta(minutes=25))
    much_later = Sighting(uuid.uuid4(), START + timedelta(minutes=50 + 180))  # exactly 3 h after `second`
    store.add([first, second, much_later])
    assert [v.is_returning for v in store.visits] == [False, True, True]
    store.add([late])
    assert [(v.sightings, v.is_returning) for v in store.visits] == [(3, False), (1, True)]
    later_still = Sighting(uuid.uuid4(), START + timedelta(minutes=50 + 170))  # extends no visit: 2 h 50 after
    store.add([later_still])
    assert [(v.sightings, v.is_returning) for v in store.visits] == [(3, False), (2, True)]


def test_the_visit_after_the_neighbourhood_becomes_returning_when_a_sighting_comes_closer() -> None:
    store = InMemoryVisits()
    early, late = Sighting(uuid.uuid4(), START), Sighting(uuid.uuid4(), START + timedelta(hours=5))
    store.add([early, late])
    assert [v.is_returning for v in store.visits] == [False, False]
    store.add([Sighting(uuid.uuid4(), START + timedelta(hours=2, minutes=30))])
    assert [v.is_returning for v in store.visits] == [False, True, True]
