"""Signed checkpoints: the anchor that makes a rewritten chain detectable.

The hash chain alone proves nothing against someone who can rewrite the whole table and recompute every
hash. Every N records or T seconds the audit service signs (tenant, last seq, last hash, time) with an
Ed25519 key and stores the checkpoint outside Postgres; verify then requires the chain to pass through
every signed (seq, hash). No I/O here.
"""

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.domain.chain import AuditRecord, ChainVerdict, ChainVerifier


@dataclass(frozen=True)
class Checkpoint:
    tenant_id: str
    last_seq: int
    last_hash: str
    signed_at: datetime
    key_id: str
    signature: str = ""

    def signed_content(self) -> bytes:
        """What the signature covers: everything but the signature, as canonical JSON."""
        content = {
            "tenant_id": self.tenant_id,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "signed_at": self.signed_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "key_id": self.key_id,
        }
        return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> bytes:
        return json.dumps({**json.loads(self.signed_content()), "signature": self.signature}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Checkpoint":
        fields = json.loads(data)
        return cls(**{**fields, "signed_at": datetime.fromisoformat(fields["signed_at"])})


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """A short name for a public key, carried in each checkpoint so verify knows which key to use after a
    rotation."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_checkpoint(key: Ed25519PrivateKey, tenant_id: str, last_seq: int, last_hash: str, at: datetime) -> Checkpoint:
    unsigned = Checkpoint(tenant_id, last_seq, last_hash, at, public_key_id(key.public_key()))
    signature = base64.b64encode(key.sign(unsigned.signed_content())).decode()
    return replace(unsigned, signature=signature)


def signature_problem(checkpoint: Checkpoint, tenant_id: str, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """Why this checkpoint cannot be trusted for `tenant_id`, or None if its signature holds."""
    key = keys.get(checkpoint.key_id)
    if key is None:
        return f"checkpoint for seq {checkpoint.last_seq} is signed by unknown key {checkpoint.key_id}"
    try:
        key.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_content())
    except (InvalidSignature, ValueError):
        return f"checkpoint for seq {checkpoint.last_seq} has an invalid signature"
    if checkpoint.tenant_id != tenant_id:
        return f"checkpoint for seq {checkpoint.last_seq} belongs to tenant {checkpoint.tenant_id}"
    return None


def load_signing_key(text: str) -> Ed25519PrivateKey:
    """The audit signing key from a PKCS8 PEM, or a raw 32-byte seed as 64 hex digits or base64."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the audit signing key PEM is not an Ed25519 private key")
        return key
    try:
        seed = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise ValueError("a raw audit signing key seed must be 32 bytes (64 hex digits or base64)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_keys(pems: str) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in a text of concatenated PEM blocks (the keys of earlier signing keys)."""
    keys = []
    for block in pems.split("-----END PUBLIC KEY-----"):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = serialization.load_pem_public_key((block.strip() + "\n-----END PUBLIC KEY-----\n").encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("an audit public key is not an Ed25519 key")
        keys.append(key)
    return keys


class AnchoredVerifier:
    """Checks the chain record by record and, at every signed checkpoint's seq, that the record's hash is
    the signed one. Checkpoints must be loaded before the records are read, so a checkpoint signed during
    verification cannot look like a truncation."""

    def __init__(self, tenant_id: str, checkpoints: Iterable[Checkpoint], keys: Mapping[str, Ed25519PublicKey]):
        self._chain = ChainVerifier()
        self._broken: ChainVerdict | None = None
        self._pending: list[Checkpoint] = []
        self._anchored_seq = 0
        self._checkpoints = 0
        for checkpoint in sorted(checkpoints, key=lambda c: (c.last_seq, c.signed_at)):
            problem = signature_problem(checkpoint, tenant_id, keys)
            if problem is not None and self._broken is None:
                self._broken = ChainVerdict(False, 0, None, problem, broken_checkpoint_seq=checkpoint.last_seq)
            self._pending.append(checkpoint)

    def check(self, record: AuditRecord) -> bool:
        """False once the chain or a checkpoint is broken (at this record or before)."""
        if self._broken is not None or not self._chain.check(record):
            return False
        while self._pending and self._pending[0].last_seq == record.seq:
            checkpoint = self._pending.pop(0)
            if checkpoint.last_hash != record.hash:
                self._broken = ChainVerdict(
                    False,
                    self._chain.verdict().records,
                    self._anchored_seq + 1,
                    f"records {self._anchored_seq + 1}..{record.seq} differ from the checkpoint signed at"
                    f" {checkpoint.signed_at.isoformat()} for seq {record.seq} (rewritten or reordered)",
                    broken_checkpoint_seq=record.seq,
                )
                return False
            self._anchored_seq, self._checkpoints = record.seq, self._checkpoints + 1
        return True

    def verdict(self) -> ChainVerdict:
        chain = self._chain.verdict()
        if self._broken is not None:
            return replace(self._broken, records=chain.records, checkpoints=self._checkpoints)
        if not chain.ok:
            return replace(chain, checkpoints=self._checkpoints, anchored_through_seq=self._anchored_seq or None)
        if self._pending:  # signed checkpoints name records the chain no longer has
            checkpoint = self._pending[-1]
            return ChainVerdict(
                False,
                chain.records,
                chain.records + 1,
                f"the chain ends at seq {chain.records} but a checkpoint signed at {checkpoint.signed_at.isoformat()}"
                f" covers seq {checkpoint.last_seq} (truncated)",
                self._checkpoints,
                self._anchored_seq or None,
                self._pending[0].last_seq,
            )
        return replace(chain, checkpoints=self._checkpoints, anchored_through_seq=self._anchored_seq or None)


@dataclass(frozen=True)
class ChainHead:
    tenant_id: str
    seq: int
    hash: str


class CheckpointSchedule:
    """When a tenant's head is due for a checkpoint: after `every_records` unanchored records or
    `every_seconds` after the first of them. It only knows heads this process appended itself, so it
    signs the hash it computed, never one re-read from the table (which someone may have rewritten)."""

    def __init__(self, every_records: int, every_seconds: float) -> None:
        self._every_records, self._every_seconds = every_records, every_seconds
        self._heads: dict[str, ChainHead] = {}
        self._anchored_seq: dict[str, int] = {}
        self._pending_since: dict[str, datetime] = {}

    def appended(self, record: AuditRecord, now: datetime) -> ChainHead | None:
        """Note a record this process appended; the head to sign now if the record count makes it due."""
        tenant = record.tenant_id
        head = self._heads.get(tenant)
        if head is None or record.seq > head.seq:
            self._heads[tenant] = ChainHead(tenant, record.seq, record.hash)
        self._pending_since.setdefault(tenant, now)
        # After a restart the last anchored seq is unknown: count from the first record seen.
        anchored = self._anchored_seq.setdefault(tenant, record.seq - 1)
        return self._heads[tenant] if record.seq - anchored >= self._every_records else None

    def due(self, now: datetime) -> list[ChainHead]:
        """Heads whose first unanchored record is at least `every_seconds` old."""
        return [
            self._heads[tenant]
            for tenant, since in self._pending_since.items()
            if (now - since).total_seconds() >= self._every_seconds
        ]

    def pending(self) -> list[ChainHead]:
        """Every head not yet anchored (signed at shutdown so nothing written is left unanchored)."""
        return [self._heads[tenant] for tenant in self._pending_since]

    def anchored(self, head: ChainHead) -> None:
        """The checkpoint for `head` is stored; records appended since then stay pending."""
        self._anchored_seq[head.tenant_id] = max(head.seq, self._anchored_seq.get(head.tenant_id, 0))
        if self._heads[head.tenant_id].seq <= head.seq:
            self._pending_since.pop(head.tenant_id, None)
