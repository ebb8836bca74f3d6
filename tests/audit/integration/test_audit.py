"""Audit against real NATS JetStream and Postgres: append-only chain, tamper detection, verify API and CLI."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NatsClient

from schemas import AuditEntryRecorded, subjects
from services.audit.bootstrap import Audit, bootstrap
from services.audit.config import AuditSettings
from tests.support import new_tenant


@pytest.fixture(scope="module")
async def audit(nats_url: str, nats_users, postgres_dsn: str, keys) -> AsyncIterator[Audit]:
    settings = AuditSettings(
        nats_url=nats_url,
        nats_credentials=nats_users["audit"],
        postgres_dsn=postgres_dsn,
        jwt_public_key=keys.public_pem,
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
    for _ in range(100):
        result = await verify(audit, token)
        if result["records"] >= 5:
            break
        await asyncio.sleep(0.2)
    assert result == {"tenant_id": tenant, "ok": True, "records": 5, "first_broken_seq": None, "reason": None}

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
            "REVISIT_POSTGRES_DSN": postgres_dsn,
            "REVISIT_NATS_URL": "nats://unused:4222",
            "REVISIT_JWT_PUBLIC_KEY": "unused",
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
