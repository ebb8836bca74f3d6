"""Reporting's step of the person lifecycle, the pure parts: visits regrouped per person, what changed, the
stored outcome, and the events announced from it."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from schemas import Event, PersonKind
from services.reporting import handlers
from services.reporting.domain.lifecycle import OperationOutcome, lock_order, outcome_from_json, outcome_to_json
from services.reporting.domain.visits import (
    PersonSighting,
    PersonVisit,
    RemovedVisit,
    Sighting,
    VisitChanges,
    VisitRules,
    diff_visits,
    visits_of_sightings,
)

RULES = VisitRules(gap=timedelta(minutes=30), lookback=timedelta(days=90))
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
A, B = uuid.UUID(int=1), uuid.UUID(int=2)


def seen(person: uuid.UUID, hours: float, site: str = "store-1") -> PersonSighting:
    return PersonSighting(site, person, Sighting(uuid.uuid4(), T0 + timedelta(hours=hours)))


def test_visits_are_sessionized_per_site_and_person() -> None:
    sightings = [seen(A, 0), seen(A, 0.2), seen(B, 0.1), seen(A, 1, site="store-2")]
    visits = visits_of_sightings(sightings, RULES)
    assert [(v.site_id, v.person_id, v.visit.sightings) for v in visits] == [
        ("store-1", A, 2),
        ("store-1", B, 1),
        ("store-2", A, 1),
    ]


def test_merge_then_split_gives_back_the_same_visits() -> None:
    mine, theirs = [seen(A, 0), seen(A, 24)], [seen(B, 1), seen(B, 25)]
    apart = visits_of_sightings([*mine, *theirs], RULES)
    merged = visits_of_sightings([*mine, *[PersonSighting(s.site_id, A, s.sighting) for s in theirs]], RULES)
    assert [v.visit.is_returning for v in merged] == [False, True, True, True]
    changes = diff_visits(apart, merged)
    # B's visits keep their ids under A: changed, not removed, so a consumer keyed on the visit replaces them
    assert {v.person_id for v in changes.changed} == {A} and len(changes.changed) == 2 and changes.removed == ()
    assert visits_of_sightings([*mine, *theirs], RULES) == apart  # split back: B's first visit is new again


def test_a_visit_swallowed_by_another_is_removed() -> None:
    mine, theirs = seen(A, 0), seen(B, 0.1)
    before = visits_of_sightings([mine, theirs], RULES)
    after = visits_of_sightings([mine, PersonSighting("store-1", A, theirs.sighting)], RULES)
    changes = diff_visits(before, after)
    assert changes.removed == (RemovedVisit("store-1", B, before[1].visit.visit_id),)
    assert [v.visit.sightings for v in changes.changed] == [2]


def test_persons_are_locked_in_one_order() -> None:
    assert lock_order([B, A, B]) == [A, B]


def outcome() -> OperationOutcome:
    visits = visits_of_sightings([seen(A, 0), seen(A, 24)], RULES)
    return OperationOutcome(
        operation_id=uuid.uuid4(),
        kind="merge",
        person_id=A,
        changed_sightings=2,
        visits=VisitChanges(changed=tuple(visits), removed=(RemovedVisit("store-1", B, uuid.uuid4()),)),
        completed_at=T0 + timedelta(days=3),
    )


def test_a_stored_outcome_reads_back_the_same() -> None:
    done = outcome()
    text = outcome_to_json(done)
    assert outcome_from_json(done.operation_id, done.kind, done.person_id, text, done.completed_at) == done


def test_a_stored_kind_change_keeps_the_kind_it_gave() -> None:
    done = replace(outcome(), kind="kind_change", person_kind=PersonKind.STAFF)
    text = outcome_to_json(done)
    assert outcome_from_json(done.operation_id, done.kind, done.person_id, text, done.completed_at) == done
    entry = handlers.audit_entry("acme", done)
    assert (entry.action, entry.details["person_kind"]) == ("sightings_reattributed", "staff")


async def test_a_repeated_step_publishes_identical_events() -> None:
    done = outcome()
    published: list[tuple[str, bytes]] = []

    async def publish(subject: str, event: Event) -> None:
        published.append((subject, event.to_json_bytes()))

    first = await handlers.complete_step(done, "acme", publish)
    again = outcome_from_json(done.operation_id, done.kind, done.person_id, outcome_to_json(done), done.completed_at)
    assert await handlers.complete_step(again, "acme", publish) == first
    assert published[: len(first)] == published[len(first) :]
    subjects_used = [subject for subject, _ in published[: len(first)]]
    assert subjects_used == [
        "visits.acme.store-1",
        "visits.acme.store-1",
        "visits.acme.store-1",
        "audit.reporting.sightings_merged.acme",
        "operations.reporting.acme",
    ]


def test_a_visit_announced_again_after_another_cause_gets_a_new_id() -> None:
    placed = PersonVisit("store-1", A, visits_of_sightings([seen(A, 0)], RULES)[0].visit)
    first, cause = handlers.visit_record("acme", placed, uuid.uuid4(), T0), uuid.uuid4()
    assert handlers.visit_record("acme", placed, cause, T0) == handlers.visit_record("acme", placed, cause, T0)
    assert handlers.visit_record("acme", placed, cause, T0).event_id != first.event_id
