"""The in-memory copy a replica searches: exact against numpy brute force, and right after every kind of write."""

import uuid

import numpy as np

from schemas import PersonKind
from services.matcher.domain.assignment import normalize
from services.matcher.domain.exact_search import StoredVector, TenantVectors


def rows_of(vectors: np.ndarray, persons: list[uuid.UUID]) -> list[StoredVector]:
    return [
        StoredVector(uuid.uuid4(), person, "t", PersonKind.CUSTOMER, 0, vector.tolist())
        for vector, person in zip(vectors, persons, strict=True)
    ]


def test_search_finds_the_exact_nearest_person_of_every_query() -> None:
    rng = np.random.default_rng(1)
    stored = normalize(rng.normal(size=(3000, 64)).astype(np.float32))
    persons = [uuid.uuid4() for _ in range(1000)] * 3
    copy = TenantVectors(64)
    copy.put(rows_of(stored, persons))
    queries = normalize(rng.normal(size=(200, 64)).astype(np.float32))
    found = copy.search(queries, 8)
    exact = np.argmax(queries @ stored.T, axis=1)
    assert [hits[0].person_id for hits in found] == [persons[i] for i in exact]
    assert all(abs(hits[0].similarity - float(queries[q] @ stored[exact[q]])) < 1e-5 for q, hits in enumerate(found))
    assert all(len({h.person_id for h in hits}) == len(hits) for hits in found)  # one hit per person


def test_a_relabel_a_removal_and_growth_are_searched_right_away() -> None:
    rng = np.random.default_rng(2)
    vectors = normalize(rng.normal(size=(5, 16)).astype(np.float32))
    alice, bob = uuid.uuid4(), uuid.uuid4()
    rows = rows_of(vectors, [alice, alice, bob, bob, bob])
    copy = TenantVectors(16)
    copy.put(rows)
    assert copy.counts([alice, bob, uuid.uuid4()]) == {alice: 2, bob: 3}

    copy.put([StoredVector(rows[2].sighting_id, alice, "t", PersonKind.STAFF, 0, rows[2].vector)])  # merged into alice
    [[best]] = [copy.search(vectors[2:3], 1)[0][:1]]
    assert best.person_id == alice and best.kind == PersonKind.STAFF
    assert copy.counts([alice, bob]) == {alice: 3, bob: 2}

    copy.remove([rows[0].sighting_id, rows[2].sighting_id, uuid.uuid4()])  # erased, and an absent id
    assert len(copy) == 3 and copy.counts([alice, bob]) == {alice: 1, bob: 2}
    assert set(copy.stored([r.sighting_id for r in rows])) == {
        rows[1].sighting_id,
        rows[3].sighting_id,
        rows[4].sighting_id,
    }
    assert [copy.search(vectors[i : i + 1], 1)[0][0].person_id for i in (1, 3, 4)] == [alice, bob, bob]

    many = normalize(rng.normal(size=(3000, 16)).astype(np.float32))  # past the initial capacity
    copy.put(rows_of(many, [uuid.uuid4() for _ in range(3000)]))
    assert len(copy) == 3003
    assert copy.search(vectors[4:5], 1)[0][0].person_id == bob


def test_an_empty_copy_answers_nobody() -> None:
    assert TenantVectors(8).search(np.ones((2, 8), dtype=np.float32), 8) == [[], []]


def test_a_floor_drops_only_the_hits_below_it() -> None:
    rng = np.random.default_rng(3)
    stored = normalize(rng.normal(size=(2000, 32)).astype(np.float32))
    persons = [uuid.uuid4() for _ in range(2000)]
    copy = TenantVectors(32)
    copy.put(rows_of(stored, persons))
    queries = normalize(
        np.vstack([stored[:50] + 0.1 * rng.normal(size=(50, 32)), rng.normal(size=(50, 32))]).astype(np.float32)
    )
    full, floored = copy.search(queries, 8), copy.search(queries, 8, floor=0.5)
    for everything, above in zip(full, floored, strict=True):
        assert above == [hit for hit in everything if hit.similarity >= 0.5]
    assert all(hits for hits in floored[:50]) and floored[0][0].person_id == persons[0]
