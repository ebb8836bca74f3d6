"""Audit's subscribers: entries reported on `audit.>` and the identity changes it records itself."""

from typing import Any

from faststream.nats import NatsBroker

from schemas import AuditEntryRecorded, PersonCreated, subjects
from services.audit import handlers
from services.audit.adapters.postgres import AuditLog
from services.audit.config import AuditSettings
from services.audit.handlers import Anchoring
from services.common.batch_consumer import BatchConsumer, Decoded, GuardPolicy, batch_subscriber

BATCH_SIZE = 64
"""Entries appended per transaction at most."""


def register_consumers(
    broker: NatsBroker, settings: AuditSettings, log: AuditLog, anchoring: Anchoring
) -> list[BatchConsumer[Any]]:
    """The batch consumers, which the bootstrap starts. Each appends its batch in the order fetched, one
    transaction per tenant (the chain is sequential per tenant, under an advisory lock)."""
    policy = GuardPolicy(handlers.SERVICE, settings.max_deliveries, lambda: broker)

    async def on_audit_entries(batch: list[Decoded[AuditEntryRecorded]]) -> None:
        await handlers.record_entries([item.event for item in batch], log, anchoring)

    async def on_persons_created(batch: list[Decoded[PersonCreated]]) -> None:
        await handlers.record_persons_created([item.event for item in batch], log, anchoring)

    entries = batch_subscriber(
        subjects.AUDIT_STREAM,
        "audit-entries",
        subjects.AUDIT_ALL,
        AuditEntryRecorded,
        on_audit_entries,
        policy,
        title="audit:audit",
        description="Append reported actions to the chain (in batches).",
        batch_size=BATCH_SIZE,
    )
    persons = batch_subscriber(
        subjects.IDENTITY_STREAM,
        "audit-person-created",
        "identity.person_created.*",
        PersonCreated,
        on_persons_created,
        policy,
        title="audit:identity.person_created",
        description="Record new persons (in batches).",
        batch_size=BATCH_SIZE,
    )
    return [entries, persons]
