"""`make dev`'s summary of what ingest made of the demo's events, read from the FACES stream of a real NATS."""

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client as NatsClient

from devstack.ingest_summary import IngestOutcome, describe, faces_stream_position, read_ingest_outcome
from schemas import subjects
from services.ingest.bootstrap import Ingest
from tests.ingest.integration.conftest import registered_tenant
from tests.ingest.integration.test_ingest import Detected
from tests.support import collect_messages


async def test_the_summary_counts_this_runs_accepted_and_rejected_events_with_their_reasons(
    ingest: Ingest, nats_connection: NatsClient, nats_url: str, nats_admin_credentials: Path, detected: Detected
) -> None:
    tenant = await registered_tenant(nats_connection)
    js = nats_connection.jetstream()
    subject = subjects.face_detected(tenant, "store-1", "entrance")
    await js.publish(subject, detected(tenant, camera_id="back-door").to_json_bytes())  # an earlier run's
    await collect_messages(nats_connection, subjects.face_rejected(tenant), 1)
    position = await faces_stream_position(nats_url, nats_admin_credentials)

    for event in (detected(tenant), detected(tenant), detected(tenant, captured_at=datetime(1970, 1, 1, tzinfo=UTC))):
        await js.publish(subject, event.to_json_bytes())
    await collect_messages(nats_connection, subjects.face_ingested(tenant, "store-1"), 2)
    await collect_messages(nats_connection, subjects.face_rejected(tenant), 2)  # the earlier one and this run's

    outcome = await read_ingest_outcome(nats_url, nats_admin_credentials, tenant, position)
    assert outcome.accepted == 2 and outcome.rejected == 1
    [(reason, count)] = outcome.rejected_by_reason.items()
    assert count == 1
    assert "1970-01-01" in reason and "older than" in reason
    assert describe(outcome).splitlines()[0] == "ingest accepted 2 events and rejected 1"


def test_a_clean_run_is_one_line_and_reasons_come_most_frequent_first() -> None:
    assert describe(IngestOutcome(18, Counter())) == "ingest accepted 18 events and rejected 0"
    lines = describe(IngestOutcome(0, Counter({"camera x is not registered": 2, "in the future": 5}))).splitlines()
    assert lines == [
        "ingest accepted 0 events and rejected 7",
        "  5 rejected: in the future",
        "  2 rejected: camera x is not registered",
    ]
