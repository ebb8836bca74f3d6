import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone

from services.audit.domain.chain import GENESIS_HASH, AuditEntry, AuditRecord, next_record, verify_chain

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def chain(length: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for index in range(length):
        records.append(
            next_record(
                records[-1] if records else None,
                AuditEntry(
                    tenant_id="acme",
                    event_id=uuid.uuid4(),
                    service="identity",
                    action="person_created",
                    actor="service:identity",
                    resource=f"person/{index}",
                    details={"n": index},
                    occurred_at=T0 + timedelta(seconds=index),
                ),
                recorded_at=T0 + timedelta(seconds=index, milliseconds=5),
            )
        )
    return records


def test_an_untouched_chain_verifies() -> None:
    records = chain(5)
    assert records[0].prev_hash == GENESIS_HASH and records[0].seq == 1
    verdict = verify_chain(records)
    assert verdict.ok and verdict.records == 5


def test_changed_content_names_the_record() -> None:
    records = chain(5)
    records[2] = dataclasses.replace(records[2], actor="someone-else")
    verdict = verify_chain(records)
    assert not verdict.ok and verdict.first_broken_seq == 3 and "hash" in (verdict.reason or "")


def test_removed_record_is_detected() -> None:
    records = chain(5)
    del records[1]
    verdict = verify_chain(records)
    assert not verdict.ok and verdict.first_broken_seq == 3


def test_a_rehashed_record_still_breaks_the_next_link() -> None:
    records = chain(4)
    forged = dataclasses.replace(records[1], details={"n": 99})
    fields = ("tenant_id", "event_id", "service", "action", "actor", "resource", "details", "occurred_at")
    entry = AuditEntry(**{name: getattr(forged, name) for name in fields})
    records[1] = next_record(records[0], entry, forged.recorded_at)
    verdict = verify_chain(records)
    assert not verdict.ok and verdict.first_broken_seq == 3


def test_hash_survives_a_timezone_round_trip() -> None:
    record = chain(1)[0]
    shifted = dataclasses.replace(record, occurred_at=record.occurred_at.astimezone(timezone(timedelta(hours=2))))
    assert verify_chain([shifted]).ok
