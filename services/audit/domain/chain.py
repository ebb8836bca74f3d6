"""The hash chain: each record's hash covers its content and the previous record's hash, so changing,
removing or reordering any record breaks every hash after it. No I/O here."""

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    tenant_id: str
    seq: int
    event_id: uuid.UUID
    service: str
    action: str
    actor: str
    resource: str
    occurred_at: datetime
    recorded_at: datetime
    prev_hash: str
    hash: str
    details: dict[str, Any] = field(default_factory=dict)
    # The exact text that was hashed and stored; None only for records written before it existed
    # (migration 003), whose hash covers `details` as parsed back from jsonb.
    details_text: str | None = None


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    records: int
    first_broken_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    anchored_through_seq: int | None = None
    broken_checkpoint_seq: int | None = None


def canonical_details(details: dict[str, Any]) -> str:
    """The one text of `details` that is hashed, stored and re-read: sorted keys, no spaces, Python's
    shortest round-trip floats. Stored as text, not jsonb, because jsonb rewrites numbers (1e16 comes
    back as 10000000000000000) and the hash must cover what the database returns."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_content(record: AuditRecord) -> bytes:
    """Everything but the hash itself, as canonical JSON (sorted keys, no spaces, UTC ISO times);
    `details` enters as its stored text, so the hash never depends on how a number was parsed."""
    content = {
        "tenant_id": record.tenant_id,
        "seq": record.seq,
        "event_id": str(record.event_id),
        "service": record.service,
        "action": record.action,
        "actor": record.actor,
        "resource": record.resource,
        "details": record.details if record.details_text is None else record.details_text,
        "occurred_at": _utc_iso(record.occurred_at),
        "recorded_at": _utc_iso(record.recorded_at),
        "prev_hash": record.prev_hash,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _utc_iso(moment: datetime) -> str:
    """The database returns times in UTC; hashing them in UTC makes the hash survive the round trip."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(record: AuditRecord) -> str:
    return hashlib.sha256(canonical_content(record)).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """What a service reports: the content of a record before the chain numbers and hashes it."""

    tenant_id: str
    event_id: uuid.UUID
    service: str
    action: str
    actor: str
    resource: str
    details: dict[str, Any]
    occurred_at: datetime


def next_record(previous: AuditRecord | None, entry: AuditEntry, recorded_at: datetime) -> AuditRecord:
    """The record that follows `previous` (or starts the chain), with its hash."""
    unhashed = AuditRecord(
        **entry.__dict__,
        details_text=canonical_details(entry.details),
        seq=1 if previous is None else previous.seq + 1,
        recorded_at=recorded_at,
        prev_hash=GENESIS_HASH if previous is None else previous.hash,
        hash="",
    )
    return replace(unhashed, hash=record_hash(unhashed))


class ChainVerifier:
    """Checks records one at a time in seq order, so a chain of any length verifies in constant memory."""

    def __init__(self) -> None:
        self._expected_prev, self._expected_seq, self._count = GENESIS_HASH, 1, 0
        self._broken: ChainVerdict | None = None

    def check(self, record: AuditRecord) -> bool:
        """False once the chain is broken (at this record or before)."""
        if self._broken is not None:
            return False
        self._count += 1
        reason = None
        if record.seq != self._expected_seq:
            reason = f"expected seq {self._expected_seq}, found {record.seq}"
        elif record.prev_hash != self._expected_prev:
            reason = "prev_hash does not match the previous record's hash"
        elif record_hash(record) != record.hash:
            reason = "content does not match its hash"
        if reason is not None:
            self._broken = ChainVerdict(False, self._count, record.seq, reason)
            return False
        self._expected_prev, self._expected_seq = record.hash, self._expected_seq + 1
        return True

    def verdict(self) -> ChainVerdict:
        return self._broken or ChainVerdict(True, self._count)


def verify_chain(records: Iterable[AuditRecord]) -> ChainVerdict:
    """Recompute the chain in seq order and name the first record that does not fit."""
    verifier = ChainVerifier()
    for record in records:
        if not verifier.check(record):
            break
    return verifier.verdict()
