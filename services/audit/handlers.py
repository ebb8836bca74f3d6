"""Audit's handlers: append what services report, anchor the chains with signed checkpoints, and verify."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas import AuditEntryRecorded, PersonCreated
from services.audit.adapters.checkpoints import CheckpointStore
from services.audit.adapters.postgres import AuditLog
from services.audit.domain.chain import AuditEntry, AuditRecord, ChainVerdict
from services.audit.domain.checkpoint import (
    AnchoredVerifier,
    ChainHead,
    CheckpointSchedule,
    public_key_id,
    sign_checkpoint,
)

SERVICE = "audit"


@dataclass
class Anchoring:
    """What signing checkpoints needs: the key, the schedule of this process's heads, the store."""

    key: Ed25519PrivateKey
    schedule: CheckpointSchedule
    store: CheckpointStore


async def record_entries(
    entries: Sequence[AuditEntryRecorded], log: AuditLog, anchoring: Anchoring
) -> list[AuditRecord | None]:
    """Append admin actions and data changes reported on `audit.>`, in the order given; idempotent on event id."""
    return await _append(
        [
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
            for entry in entries
        ],
        log,
        anchoring,
    )


async def record_persons_created(
    events: Sequence[PersonCreated], log: AuditLog, anchoring: Anchoring
) -> list[AuditRecord | None]:
    """A new person is a data change: personal data (a face) now exists about someone."""
    return await _append(
        [
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
            for event in events
        ],
        log,
        anchoring,
    )


async def _append(entries: list[AuditEntry], log: AuditLog, anchoring: Anchoring) -> list[AuditRecord | None]:
    """Append after the commit, then sign a checkpoint at each record that makes one due. A crash between the
    two leaves the records unanchored until the next checkpoint of their tenant covers them."""
    records = await log.append_all(entries)
    now = datetime.now(UTC)
    for record in records:
        head = None if record is None else anchoring.schedule.appended(record, now)
        if head is not None:
            await anchor_head(head, anchoring)
    return records


async def anchor_head(head: ChainHead, anchoring: Anchoring) -> None:
    """Sign and store a checkpoint of a head this process appended."""
    checkpoint = sign_checkpoint(anchoring.key, head.tenant_id, head.seq, head.hash, datetime.now(UTC))
    await anchoring.store.add(checkpoint)
    anchoring.schedule.anchored(head)


async def anchor_due_heads(anchoring: Anchoring, everything: bool = False) -> int:
    """Checkpoint the heads whose oldest unanchored record has waited long enough (or all, at shutdown)."""
    heads = anchoring.schedule.pending() if everything else anchoring.schedule.due(datetime.now(UTC))
    for head in heads:
        await anchor_head(head, anchoring)
    return len(heads)


async def verify_tenant_chain(
    tenant_id: str, log: AuditLog, store: CheckpointStore, public_keys: Sequence[Ed25519PublicKey]
) -> ChainVerdict:
    """Recompute the tenant's chain and hold it against every signed checkpoint; the checkpoints are read
    first, so one signed meanwhile cannot name a record this read has not seen."""
    checkpoints = await store.of_tenant(tenant_id)
    verifier = AnchoredVerifier(tenant_id, checkpoints, {public_key_id(key): key for key in public_keys})
    async for record in log.records(tenant_id):
        if not verifier.check(record):
            break
    return verifier.verdict()
