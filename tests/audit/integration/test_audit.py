"""Audit against real NATS JetStream and Postgres: append-only chain, tamper detection against the signed
checkpoints (rewrite, truncation, reorder), the runtime login's least privilege, verify API and CLI."""

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NatsClient

import services.audit
from devstack.stack import SigningKeys, audit_login_dsn, create_audit_login
from schemas import AuditEntryRecorded, subjects
from services.audit.adapters.postgres import READ_COLUMNS
from services.audit.bootstrap import Audit, bootstrap
from services.audit.config import AuditSettings
from services.audit.domain.chain import AuditEntry, AuditRecord, canonical_details, next_record
from services.audit.handlers import anchor_due_heads
from services.common.postgres import PrivilegeError, connect_postgres_as_login, least_privilege_violations
from tests.support import new_tenant

CHECKPOINT_EVERY = 2  # records; the time-based checkpoint is pushed out of the tests' way


@pytest.fixture(scope="module")
async def audit(nats_url: str, nats_users, postgres_dsn: str, keys: SigningKeys) -> AsyncIterator[Audit]:
    await create_audit_login(postgres_dsn)
    settings = AuditSettings(
        nats_url=nats_url,
        nats_credentials=nats_users["audit"],
        postgres_dsn=audit_login_dsn(postgres_dsn),
        postgres_migration_dsn=postgres_dsn,
        jwt_public_key=keys.public_pem,
        audit_signing_key=keys.audit_private_pem,
        audit_checkpoint_every_records=CHECKPOINT_EVERY,
        audit_checkpoint_every_seconds=3600,
        environment="test",
    )
    async with bootstrap(settings) as service:
        await service.broker.start()
        yield service


def entry(tenant: str, n: int) -> AuditEntryRecorded:
    return AuditEntryRecorded(
        tenant_id=tenant,
        service="identity",
        action="person_merged",
        actor="user:alice",
        resource=f"person/{n}",
        details={"n": n, "note": "é"},
    )


async def verify(audit: Audit, token: str) -> dict:
    transport = httpx.ASGITransport(app=audit.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        response = await client.get("/v1/audit/verify", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def settled(audit: Audit, token: str, records: int) -> dict:
    """The verification once `records` are in the chain and anchored up to the last: the count-based
    checkpoints fall where concurrent handlers put them, so the tail is signed as at shutdown."""
    for _ in range(100):
        await anchor_due_heads(audit.anchoring, everything=True)
        result = await verify(audit, token)
        if result["records"] >= records and result["anchored_through_seq"] == records:
            return result
        await asyncio.sleep(0.2)
    return result


async def checkpoint_seqs(audit: Audit, tenant: str) -> list[int]:
    return sorted({checkpoint.last_seq for checkpoint in await audit.anchoring.store.of_tenant(tenant)})


async def publish_entries(connection: NatsClient, entries: list[AuditEntryRecorded]) -> None:
    js = connection.jetstream()
    for e in entries:
        await js.publish(
            subjects.audit_entry(e.service, e.action, e.tenant_id),
            e.to_json_bytes(),
            headers={"Nats-Msg-Id": str(e.event_id)},
        )


async def test_chain_records_verifies_and_detects_tampering(
    audit: Audit, nats_connection: NatsClient, postgres_dsn: str, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    entries = [entry(tenant, n) for n in range(5)]
    await publish_entries(nats_connection, entries + entries[:2])  # duplicates are recorded once
    token = make_token(tenant, ["admin"])
    result = await settled(audit, token, records=5)
    assert result == {
        "tenant_id": tenant,
        "ok": True,
        "records": 5,
        "first_broken_seq": None,
        "reason": None,
        "checkpoints": len(await checkpoint_seqs(audit, tenant)),
        "anchored_through_seq": 5,
        "broken_checkpoint_seq": None,
    }
    assert result["checkpoints"] >= 5 // CHECKPOINT_EVERY

    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute("UPDATE audit.records SET actor = 'mallory' WHERE tenant_id = $1 AND seq = 3", tenant)
    finally:
        await admin.close()
    tampered = await verify(audit, token)
    assert tampered["ok"] is False and tampered["first_broken_seq"] == 3

    cli = subprocess.run(
        [sys.executable, "-m", "services.audit", "verify", "--tenant", tenant],
        env={
            **os.environ,
            "REVISIT_ENVIRONMENT": "test",
            "REVISIT_POSTGRES_DSN": audit_login_dsn(postgres_dsn),
            "REVISIT_POSTGRES_MIGRATION_DSN": postgres_dsn,
            "REVISIT_NATS_URL": audit.settings.nats_url,
            "REVISIT_JWT_PUBLIC_KEY": "unused",
            "REVISIT_AUDIT_SIGNING_KEY": audit.settings.audit_signing_key,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and '"first_broken_seq": 3' in cli.stdout


async def test_service_role_can_only_insert(audit: Audit, postgres_dsn: str) -> None:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE revisit_audit")
            await connection.execute("SELECT set_config('revisit.tenant_id', 'x', true)")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute("UPDATE audit.records SET actor = 'x'")
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE revisit_audit")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute("DELETE FROM audit.records")
    finally:
        await connection.close()


async def test_other_roles_cannot_verify(audit: Audit, make_token: Callable[..., str]) -> None:
    transport = httpx.ASGITransport(app=audit.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        response = await client.get(
            "/v1/audit/verify", headers={"authorization": f"Bearer {make_token('acme', ['analyst'])}"}
        )
    assert response.status_code == 403


async def test_recent_entries_newest_first_for_admins_only(
    audit: Audit, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    tenant, other = new_tenant(), new_tenant()
    await publish_entries(nats_connection, [entry(tenant, n) for n in range(3)] + [entry(other, 9)])
    await settled(audit, make_token(tenant, ["admin"]), records=3)
    transport = httpx.ASGITransport(app=audit.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        admin = {"authorization": f"Bearer {make_token(tenant, ['admin'])}"}
        recent = (await client.get("/v1/audit/entries", params={"limit": 2}, headers=admin)).json()["items"]
        analyst = {"authorization": f"Bearer {make_token(tenant, ['analyst'])}"}
        refused = await client.get("/v1/audit/entries", headers=analyst)
    assert [e["seq"] for e in recent] == [3, 2]  # newest first (consumers may record the three in any order)
    assert all(e["resource"] == f"person/{e['details']['n']}" and e["actor"] == "user:alice" for e in recent)
    assert {e["resource"] for e in recent} < {"person/0", "person/1", "person/2"}
    assert refused.status_code == 403
    assert refused.json()["detail"] == "requires one of the roles: admin, platform"  # roles as words


async def test_rls_hides_other_tenants_rows(audit: Audit, nats_connection: NatsClient, postgres_dsn: str) -> None:
    tenant = new_tenant()
    await publish_entries(nats_connection, [entry(tenant, 1)])
    connection = await asyncpg.connect(postgres_dsn)
    try:
        for _ in range(100):
            if await connection.fetchval("SELECT count(*) FROM audit.records WHERE tenant_id = $1", tenant):
                break
            await asyncio.sleep(0.1)
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE revisit_audit")
            await connection.execute("SELECT set_config('revisit.tenant_id', $1, true)", f"not-{uuid.uuid4().hex[:6]}")
            assert await connection.fetchval("SELECT count(*) FROM audit.records WHERE tenant_id = $1", tenant) == 0
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE revisit_audit")
            await connection.execute("SELECT set_config('revisit.tenant_id', $1, true)", tenant)
            assert await connection.fetchval("SELECT count(*) FROM audit.records WHERE tenant_id = $1", tenant) == 1
    finally:
        await connection.close()


async def chain_of(
    tenant: str, entries: list[AuditEntryRecorded], audit: Audit, connection: NatsClient, make_token: Callable
) -> str:
    """Publish `entries` and return an admin token once they are recorded and anchored."""
    await publish_entries(connection, entries)
    token = make_token(tenant, ["admin"])
    result = await settled(audit, token, len(entries))
    assert result["ok"] and result["records"] == len(entries), result
    return token


async def rewrite_as_owner(postgres_dsn: str, tenant: str, change: Callable[[list[AuditRecord]], list[AuditRecord]]):
    """What the operator could do with the owner login: rewrite the tenant's rows and recompute every hash, so
    the chain is internally consistent again."""
    owner = await asyncpg.connect(postgres_dsn)
    try:
        rows = await owner.fetch(f"SELECT {READ_COLUMNS} FROM audit.records WHERE tenant_id = $1 ORDER BY seq", tenant)
        records = change([AuditRecord(**{**dict(r), "details": json.loads(r["details_text"])}) for r in rows])
        fields = ("tenant_id", "event_id", "service", "action", "actor", "resource", "details", "occurred_at")
        rechained: list[AuditRecord] = []
        for record in records:
            entry = AuditEntry(**{name: getattr(record, name) for name in fields})
            rechained.append(next_record(rechained[-1] if rechained else None, entry, record.recorded_at))
        async with owner.transaction():
            await owner.execute("DELETE FROM audit.records WHERE tenant_id = $1", tenant)
            await owner.executemany(
                "INSERT INTO audit.records (tenant_id, seq, event_id, service, action, actor, resource,"
                " details_text, occurred_at, recorded_at, prev_hash, hash)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                [
                    (r.tenant_id, r.seq, r.event_id, r.service, r.action, r.actor, r.resource, r.details_text,
                     r.occurred_at, r.recorded_at, r.prev_hash, r.hash)
                    for r in rechained
                ],
            )  # fmt: skip
    finally:
        await owner.close()


async def test_rewrite_with_recomputed_hashes_is_named_by_the_checkpoint(
    audit: Audit, nats_connection: NatsClient, postgres_dsn: str, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    token = await chain_of(tenant, [entry(tenant, n) for n in range(6)], audit, nats_connection, make_token)

    def forge(records: list[AuditRecord]) -> list[AuditRecord]:
        records[2] = dataclasses.replace(records[2], details={"n": 2, "note": "nothing happened"})
        return records

    await rewrite_as_owner(postgres_dsn, tenant, forge)
    result = await verify(audit, token)
    seqs = await checkpoint_seqs(audit, tenant)
    # named by the first checkpoint at or after seq 3: the change is after the checkpoint before it
    assert result["ok"] is False and result["broken_checkpoint_seq"] == min(s for s in seqs if s >= 3)
    assert result["first_broken_seq"] == max([s for s in seqs if s < 3], default=0) + 1
    assert "rewritten" in result["reason"]


async def test_deleted_tail_is_detected_as_truncation(
    audit: Audit, nats_connection: NatsClient, postgres_dsn: str, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    token = await chain_of(tenant, [entry(tenant, n) for n in range(6)], audit, nats_connection, make_token)
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute("DELETE FROM audit.records WHERE tenant_id = $1 AND seq >= 5", tenant)
    finally:
        await admin.close()
    result = await verify(audit, token)
    assert result["ok"] is False and result["records"] == 4 and result["first_broken_seq"] == 5
    assert result["broken_checkpoint_seq"] == min(s for s in await checkpoint_seqs(audit, tenant) if s >= 5)
    assert "truncated" in result["reason"]


async def test_swapped_records_are_detected(
    audit: Audit, nats_connection: NatsClient, postgres_dsn: str, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    token = await chain_of(tenant, [entry(tenant, n) for n in range(4)], audit, nats_connection, make_token)
    await rewrite_as_owner(postgres_dsn, tenant, lambda r: [r[0], r[2], r[1], r[3]])
    result = await verify(audit, token)
    seqs = await checkpoint_seqs(audit, tenant)
    assert result["ok"] is False and result["broken_checkpoint_seq"] == min(s for s in seqs if s >= 2)
    assert result["first_broken_seq"] == max([s for s in seqs if s < 2], default=0) + 1

    admin = await asyncpg.connect(postgres_dsn)  # swapping rows without rehashing breaks the links
    try:
        await rewrite_as_owner(postgres_dsn, tenant, lambda r: [r[0], r[2], r[1], r[3]])  # back to the order signed
        assert (await verify(audit, token))["ok"] is True
        async with admin.transaction():
            await admin.execute(
                "UPDATE audit.records SET seq = seq + 100 WHERE tenant_id = $1 AND seq IN (3, 4)", tenant
            )
            await admin.execute(
                "UPDATE audit.records SET seq = 107 - seq WHERE tenant_id = $1 AND seq IN (103, 104)", tenant
            )
    finally:
        await admin.close()
    result = await verify(audit, token)
    assert result["ok"] is False and result["first_broken_seq"] == 3


async def test_runtime_login_cannot_change_rows_nor_become_a_role_that_can(
    audit: Audit, nats_connection: NatsClient, postgres_dsn: str, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    await chain_of(tenant, [entry(tenant, n) for n in range(2)], audit, nats_connection, make_token)
    admin = await asyncpg.connect(postgres_dsn)
    owner = await admin.fetchval(
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'audit' AND tablename = 'records'"
    )
    await admin.close()
    runtime = await asyncpg.connect(audit_login_dsn(postgres_dsn))
    try:
        await runtime.execute("SELECT set_config('revisit.tenant_id', $1, false)", tenant)
        assert await runtime.fetchval("SELECT count(*) FROM audit.records") == 2  # it reads
        for statement in (
            "UPDATE audit.records SET actor = 'mallory'",
            "DELETE FROM audit.records",
            "TRUNCATE audit.records",
            "ALTER TABLE audit.records DISABLE ROW LEVEL SECURITY",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute(statement)
        await runtime.execute("RESET ROLE")  # nothing to reset to: the login is the restricted identity
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute("UPDATE audit.records SET actor = 'mallory'")
        for role in (owner, "postgres"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute(f'SET ROLE "{role}"')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute(f'SET SESSION AUTHORIZATION "{owner}"')
        assert await least_privilege_violations(runtime, "audit") == []
    finally:
        await runtime.close()


async def test_an_owner_login_is_refused_as_the_runtime_login(audit: Audit, postgres_dsn: str) -> None:
    migrations = Path(services.audit.__file__).parent / "migrations"
    with pytest.raises(PrivilegeError, match=r"superuser|owns"):
        await connect_postgres_as_login(postgres_dsn, postgres_dsn, "audit", "revisit_audit", migrations, 5)


async def test_numbers_unicode_and_nested_details_verify_after_the_round_trip(
    audit: Audit, nats_connection: NatsClient, postgres_dsn: str, make_token: Callable[..., str]
) -> None:
    tenant = new_tenant()
    details: list[dict[str, Any]] = [
        {"big": 1e16, "huge": 1.5e300, "int": 2**63},
        {"sum": 0.1 + 0.2, "tiny": 5e-324, "negative_zero": -0.0},
        {"text": 'é 中文 🙂 "quoted" \\ \n', "emoji_key_🙂": True},
        {"nested": {"b": [1, {"c": 1.5e-7, "d": [None, 1e16]}], "a": {}}},
    ]
    entries = [entry(tenant, n).model_copy(update={"details": d}) for n, d in enumerate(details)]
    token = await chain_of(tenant, entries, audit, nats_connection, make_token)
    assert (await verify(audit, token))["ok"] is True
    stored = {record.details_text async for record in audit.log.records(tenant)}
    assert stored == {canonical_details(d) for d in details}
    admin = await asyncpg.connect(postgres_dsn)  # why not jsonb: it does not give back the text it was given
    try:
        assert await admin.fetchval("SELECT $1::jsonb::text", canonical_details({"big": 1e16})) != '{"big":1e+16}'
    finally:
        await admin.close()


async def test_entries_redelivered_under_new_msg_ids_are_chained_once(
    audit: Audit, nats_connection: NatsClient, make_token: Callable[..., str]
) -> None:
    """JetStream's duplicate window does not catch a re-publish under another Nats-Msg-Id (an edge's replay, a
    service's retry after a crash): the batch append must, within one batch and across batches."""
    tenant = new_tenant()
    entries = [entry(tenant, n) for n in range(6)]
    js = nats_connection.jetstream()
    for e in [*entries, *entries[:3], *entries[4:]]:
        await js.publish(
            subjects.audit_entry(e.service, e.action, e.tenant_id),
            e.to_json_bytes(),
            headers={"Nats-Msg-Id": str(uuid.uuid4())},
        )
    for _ in range(100):  # until the consumer has settled every copy
        info = await js.consumer_info(subjects.AUDIT_STREAM.name, "audit-entries")
        if not info.num_pending and not info.num_ack_pending:
            break
        await asyncio.sleep(0.1)
    result = await settled(audit, make_token(tenant, ["admin"]), records=6)
    assert (result["ok"], result["records"]) == (True, 6)
    records = [record async for record in audit.log.records(tenant)]
    assert [record.resource for record in records] == [f"person/{n}" for n in range(6)]  # in publication order
