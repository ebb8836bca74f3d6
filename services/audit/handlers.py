"""Audit's handlers: append what services report, and verify a tenant's chain."""

from schemas import AuditEntryRecorded, PersonCreated
from services.audit.adapters.postgres import AuditLog
from services.audit.domain.chain import AuditEntry, AuditRecord, ChainVerdict, ChainVerifier


async def record_entry(entry: AuditEntryRecorded, log: AuditLog) -> AuditRecord | None:
    """Append an admin action or data change reported on `audit.>`; idempotent on its event id."""
    return await log.append(
        AuditEntry(
            tenant_id=entry.tenant_id,
            event_id=entry.event_id,
            service=entry.service,
            action=entry.action,
            actor=entry.actor,
            resource=entry.resource,
            details=entry.details,
            occurred_at=entry.occurred_at,
        )
    )


async def record_person_created(event: PersonCreated, log: AuditLog) -> AuditRecord | None:
    """A new person is a data change: personal data (a face) now exists about someone."""
    return await log.append(
        AuditEntry(
            tenant_id=event.tenant_id,
            event_id=event.event_id,
            service="identity",
            action="person_created",
            actor="service:identity",
            resource=f"person/{event.person_id}",
            details={"kind": event.person_kind.value, "first_site_id": event.first_site_id},
            occurred_at=event.occurred_at,
        )
    )


async def verify_tenant_chain(tenant_id: str, log: AuditLog) -> ChainVerdict:
    verifier = ChainVerifier()
    async for record in log.records(tenant_id):
        if not verifier.check(record):
            break
    return verifier.verdict()
