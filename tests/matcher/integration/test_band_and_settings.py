"""The ambiguous band and tenants' own thresholds, against real NATS and Milvus Lite."""

import uuid
from collections.abc import Callable

import httpx
from nats.aio.client import Client as NatsClient

from schemas import AuditEntryRecorded, PersonKind, PersonsMarkedDifferent
from services.matcher.adapters.milvus import StoredVector
from services.matcher.bootstrap import Matcher
from tests.support import collect_messages, new_tenant
from tests.support_matcher import MODEL, at_similarity, axis_mix, ingested, matched_by_source, publish

DIM = 128


async def stored_person(matcher: Matcher, tenant: str) -> uuid.UUID:
    """A person with one vector, `axis_mix(1)`, written straight into the store."""
    person = uuid.uuid4()
    row = StoredVector(uuid.uuid4(), person, tenant, PersonKind.CUSTOMER, 0, axis_mix(1).tolist())
    await matcher.store.insert(MODEL, DIM, [row])
    return person


def client(matcher: Matcher) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=matcher.app), base_url="http://matcher")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def review_band(matcher: Matcher, tenant: str, make_token: Callable[..., str], band: float = 0.05) -> None:
    """The tenant's operators review duplicates: near-threshold faces go to them (the default band is 0)."""
    async with client(matcher) as http:
        response = await http.put(
            "/v1/settings", json={"ambiguous_band": band}, headers=bearer(make_token(tenant, ["admin"]))
        )
    assert response.status_code == 200, response.text


async def test_a_face_just_above_the_threshold_is_a_provisional_person_suggested_as_a_duplicate(
    matcher: Matcher, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    await review_band(matcher, tenant, make_token)
    alice = await stored_person(matcher, tenant)
    face = ingested(tenant, at_similarity(0.42))  # in [0.40, 0.45): the band
    await publish(nats_connection, [face])
    [matched] = (await matched_by_source(nats_connection, tenant, 1)).values()
    async with client(matcher) as http:
        response = await http.get("/v1/persons/duplicates", headers=bearer(make_token(tenant, ["analyst"])))

    assert matched.is_new_person and matched.person_id != alice
    assert abs((matched.similarity or 0) - 0.42) < 1e-3  # the candidate's, not None
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]  # the default min_similarity (0.5) would hide it without the record
    assert {item["person_id"], item["other_person_id"]} == {str(alice), str(matched.person_id)}
    assert item["ambiguous_match"] is True and abs(item["similarity"] - 0.42) < 1e-3


async def test_a_face_well_above_the_threshold_joins_its_person(matcher: Matcher, nats_connection: NatsClient) -> None:
    tenant = new_tenant()
    alice = await stored_person(matcher, tenant)
    face = ingested(tenant, at_similarity(0.6))
    await publish(nats_connection, [face])
    [matched] = (await matched_by_source(nats_connection, tenant, 1)).values()
    assert matched.person_id == alice and not matched.is_new_person


async def test_a_tenant_override_changes_the_decision_for_that_tenant_only(
    matcher: Matcher, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    reviewed, plain = new_tenant(), new_tenant()
    await review_band(matcher, reviewed, make_token)
    async with client(matcher) as http:
        settings = await http.get("/v1/settings", headers=bearer(make_token(reviewed, ["analyst"])))
    assert settings.json()["overrides"] == {"ambiguous_band": 0.05}
    assert settings.json()["effective"]["ambiguous_band"] == 0.05
    assert settings.json()["effective"]["match_threshold"] == matcher.settings.match_threshold

    persons = {tenant: await stored_person(matcher, tenant) for tenant in (reviewed, plain)}
    faces = {tenant: ingested(tenant, at_similarity(0.42)) for tenant in (reviewed, plain)}
    await publish(nats_connection, list(faces.values()))
    [reviewed_match] = (await matched_by_source(nats_connection, reviewed, 1)).values()
    [plain_match] = (await matched_by_source(nats_connection, plain, 1)).values()

    assert reviewed_match.is_new_person and reviewed_match.person_id != persons[reviewed]
    assert plain_match.person_id == persons[plain] and not plain_match.is_new_person


async def test_changing_settings_is_audited_and_refused_for_bad_values_and_non_admins(
    matcher: Matcher, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    admin, analyst, viewer = (
        bearer(make_token(tenant, [role], subject=f"{role}@shop")) for role in ("admin", "analyst", "viewer")
    )
    async with client(matcher) as http:
        too_wide = await http.put("/v1/settings", json={"ambiguous_band": 0.3}, headers=admin)
        above_one = await http.put("/v1/settings", json={"match_threshold": 1.5}, headers=admin)
        inverted = await http.put("/v1/settings", json={"enrol_min_quality": 0.5}, headers=admin)
        by_analyst = await http.put("/v1/settings", json={"match_threshold": 0.5}, headers=analyst)
        read_by_viewer = await http.get("/v1/settings", headers=viewer)
        unchanged = await http.get("/v1/settings", headers=analyst)
        accepted = await http.put("/v1/settings", json={"match_threshold": 0.5, "ambiguous_band": 0.1}, headers=admin)
    [message] = await collect_messages(nats_connection, f"audit.matcher.settings_changed.{tenant}", 1)
    audit = AuditEntryRecorded.model_validate_json(message.data)

    assert too_wide.status_code == 422 and "ambiguous_band" in too_wide.text
    assert above_one.status_code == 422 and "match_threshold" in above_one.text
    assert inverted.status_code == 422 and "below identify_min_quality" in inverted.json()["detail"]
    assert by_analyst.status_code == 403 and read_by_viewer.status_code == 403
    assert unchanged.json()["overrides"] == {}
    assert accepted.status_code == 200 and accepted.json()["effective"]["match_threshold"] == 0.5
    assert audit.actor == "admin@shop" and audit.resource == "settings/matcher"
    assert audit.details == {"before": {}, "after": {"match_threshold": 0.5, "ambiguous_band": 0.1}}


async def test_decided_ambiguous_pairs_are_purged(matcher: Matcher) -> None:
    """A pair marked not the same is purged, and so is every pair naming a person merged away or erased; the
    others stay for the operator."""
    from services.matcher.adapters.ambiguous_pairs import AmbiguousPairRecord
    from services.matcher.domain.not_same import person_pair
    from services.matcher.handlers import mark_not_same

    tenant = new_tenant()
    p1, p2, p3, p4, p5 = (uuid.uuid4() for _ in range(5))
    record = AmbiguousPairRecord(similarity=0.42, sighting_id=uuid.uuid4())
    pairs = [person_pair(p1, p2), person_pair(p1, p3), person_pair(p4, p5), person_pair(p2, p3)]
    await matcher.ports.ambiguous.record(tenant, dict.fromkeys(pairs, record))

    assert await matcher.ports.ambiguous.forget_persons(tenant, [p1]) == 2  # p1 merged away or erased
    assert set(await matcher.ports.ambiguous.pairs(tenant)) == {person_pair(p4, p5), person_pair(p2, p3)}
    await mark_not_same(PersonsMarkedDifferent(tenant_id=tenant, person_id=p5, other_person_id=p4), matcher.ports)
    assert set(await matcher.ports.ambiguous.pairs(tenant)) == {person_pair(p2, p3)}
    assert await matcher.ports.ambiguous.forget_persons(tenant, [p1]) == 0  # a repeat finds none
