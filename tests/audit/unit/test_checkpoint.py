import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.domain.chain import AuditEntry, AuditRecord, canonical_details, next_record
from services.audit.domain.checkpoint import (
    AnchoredVerifier,
    Checkpoint,
    CheckpointSchedule,
    load_public_keys,
    load_signing_key,
    public_key_id,
    sign_checkpoint,
)
from tests.audit.unit.test_chain import T0, chain

KEY = Ed25519PrivateKey.generate()
KEYS = {public_key_id(KEY.public_key()): KEY.public_key()}


def anchors(records: list[AuditRecord], every: int, key: Ed25519PrivateKey = KEY) -> list[Checkpoint]:
    return [
        sign_checkpoint(key, r.tenant_id, r.seq, r.hash, T0 + timedelta(minutes=r.seq))
        for r in records
        if r.seq % every == 0
    ]


def verify(records: list[AuditRecord], checkpoints: list[Checkpoint], keys: dict = KEYS) -> AnchoredVerifier:
    verifier = AnchoredVerifier("acme", checkpoints, keys)
    for record in records:
        if not verifier.check(record):
            break
    return verifier


def rechain(records: list[AuditRecord]) -> list[AuditRecord]:
    """What someone who can rewrite the table does: recompute every hash from the first record on."""
    out: list[AuditRecord] = []
    fields = ("tenant_id", "event_id", "service", "action", "actor", "resource", "details", "occurred_at")
    for record in records:
        entry = AuditEntry(**{name: getattr(record, name) for name in fields})
        out.append(next_record(out[-1] if out else None, entry, record.recorded_at))
    return out


def test_an_anchored_chain_verifies() -> None:
    records = chain(7)
    verdict = verify(records, anchors(records, 3)).verdict()
    assert verdict.ok and verdict.checkpoints == 2 and verdict.anchored_through_seq == 6


def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_next_checkpoint() -> None:
    records = chain(8)
    checkpoints = anchors(records, 2)
    records[4] = dataclasses.replace(records[4], details={"n": 99})
    forged = rechain(records)
    verdict = verify(forged, checkpoints).verdict()
    assert not verdict.ok and verdict.first_broken_seq == 5 and verdict.broken_checkpoint_seq == 6
    assert "5..6" in (verdict.reason or "")


def test_a_truncated_chain_is_caught() -> None:
    records = chain(6)
    verdict = verify(records[:3], anchors(records, 2)).verdict()
    assert not verdict.ok and verdict.first_broken_seq == 4 and verdict.broken_checkpoint_seq == 4
    assert "truncated" in (verdict.reason or "")


def test_a_reordered_rechained_chain_is_caught() -> None:
    records = chain(4)
    checkpoints = anchors(records, 4)
    forged = rechain([records[0], records[2], records[1], records[3]])
    verdict = verify(forged, checkpoints).verdict()
    assert not verdict.ok and verdict.first_broken_seq == 1 and verdict.broken_checkpoint_seq == 4


def test_a_forged_or_foreign_checkpoint_is_named() -> None:
    records = chain(4)
    good = anchors(records, 2)
    forged = dataclasses.replace(good[1], last_hash="f" * 64)
    verdict = verify(records, [good[0], forged]).verdict()
    assert not verdict.ok and verdict.broken_checkpoint_seq == 4 and "invalid signature" in (verdict.reason or "")
    stranger = Ed25519PrivateKey.generate()
    verdict = verify(records, anchors(records, 2, stranger)).verdict()
    assert not verdict.ok and "unknown key" in (verdict.reason or "")


def test_checkpoints_of_a_rotated_key_still_verify() -> None:
    records = chain(4)
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    checkpoints = anchors(records[:2], 2, old) + anchors(records, 4, new)
    old_pem = old.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    keys = {public_key_id(k): k for k in [new.public_key(), *load_public_keys(old_pem.decode())]}
    assert verify(records, checkpoints, keys).verdict().ok


def test_checkpoint_json_round_trip_keeps_the_signature_valid() -> None:
    checkpoint = sign_checkpoint(KEY, "acme", 3, "a" * 64, datetime(2026, 1, 1, tzinfo=UTC))
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    assert verify(chain(0), [Checkpoint.from_json(checkpoint.to_json())]).verdict().broken_checkpoint_seq == 3


def test_signing_key_as_pem_hex_or_base64_seed() -> None:
    seed = bytes(range(32))
    pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ids = {
        public_key_id(load_signing_key(text).public_key())
        for text in (pem.decode(), seed.hex(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    }
    assert len(ids) == 1
    with pytest.raises(ValueError):
        load_signing_key("changeme")


def test_schedule_by_count_and_by_age() -> None:
    schedule = CheckpointSchedule(every_records=3, every_seconds=60)
    records = chain(4)
    assert [schedule.appended(r, T0) for r in records[:2]] == [None, None]
    head = schedule.appended(records[2], T0)
    assert head is not None and head.seq == 3
    schedule.anchored(head)
    assert schedule.appended(records[3], T0 + timedelta(seconds=1)) is None
    assert schedule.due(T0 + timedelta(seconds=30)) == []
    assert [h.seq for h in schedule.due(T0 + timedelta(seconds=61))] == [4]
    schedule.anchored(schedule.pending()[0])
    assert schedule.pending() == []


@pytest.mark.parametrize(
    "details",
    [{"big": 1e16}, {"sum": 0.1 + 0.2}, {"text": "é 中文 🙂"}, {"nested": {"b": [1, {"c": 1.5e-7}], "a": None}}],
)
def test_details_text_parses_back_to_the_same_text(details: dict) -> None:
    text = canonical_details(details)
    assert canonical_details(json.loads(text)) == text
