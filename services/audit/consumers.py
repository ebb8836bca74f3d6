"""Audit's subscribers: entries reported on `audit.>` and the identity changes it records itself."""

import structlog
from faststream.nats import NatsBroker

from schemas import AuditEntryRecorded, PersonCreated, subjects
from services.audit import handlers
from services.audit.adapters.postgres import AuditLog
from services.audit.config import AuditSettings
from services.audit.handlers import Anchoring
from services.common.bus import durable_pull


def register_consumers(broker: NatsBroker, settings: AuditSettings, log: AuditLog, anchoring: Anchoring) -> None:
    entries = durable_pull(subjects.AUDIT_STREAM, "audit-entries", subjects.AUDIT_ALL, settings.max_deliveries)
    persons = durable_pull(
        subjects.IDENTITY_STREAM, "audit-person-created", "identity.person_created.*", settings.max_deliveries
    )

    @broker.subscriber(**entries, title="audit:audit", description="Append reported actions to the chain.")
    async def on_audit_entry(entry: AuditEntryRecorded) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=entry.tenant_id, event_id=str(entry.event_id)):
            await handlers.record_entry(entry, log, anchoring)

    @broker.subscriber(**persons, title="audit:identity.person_created", description="Record new persons.")
    async def on_person_created(event: PersonCreated) -> None:
        with structlog.contextvars.bound_contextvars(tenant_id=event.tenant_id, event_id=str(event.event_id)):
            await handlers.record_person_created(event, log, anchoring)
