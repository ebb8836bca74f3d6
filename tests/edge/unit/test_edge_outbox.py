"""The SQLite outbox: order, durability (also across kill -9), duplicates and its bounds."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from edge.outbox import Outbox, OutboxLimits
from edge.publisher import OutgoingMessage

ROOMY = OutboxLimits(max_events=1000, max_bytes=10_000_000, max_age_seconds=3600)
REPO = Path(__file__).resolve().parents[3]


def message(n: int, size: int = 10) -> OutgoingMessage:
    return OutgoingMessage(f"faces.detected.t.s.c{n % 2}", f"event-{n}", bytes([n % 256]) * size)


def ids(outbox: Outbox) -> list[str]:
    return [row.message.event_id for row in outbox.oldest(1000)]


def test_messages_come_out_oldest_first_and_leave_when_deleted(tmp_path):
    outbox = Outbox(tmp_path / "o.db", ROOMY)
    for n in range(5):
        outbox.put(message(n))
    rows = outbox.oldest(2)
    assert [row.message for row in rows] == [message(0), message(1)]
    outbox.delete(rows[0].seq)
    assert ids(outbox) == [f"event-{n}" for n in range(1, 5)]
    assert outbox.depth == 4 and outbox.size_bytes == 40


def test_a_repeated_event_id_is_stored_once(tmp_path):
    outbox = Outbox(tmp_path / "o.db", ROOMY)
    outbox.put(message(1))
    outbox.put(message(1))
    assert outbox.depth == 1 and len(outbox.oldest(10)) == 1


def test_messages_survive_closing_and_reopening(tmp_path):
    outbox = Outbox(tmp_path / "o.db", ROOMY)
    for n in range(3):
        outbox.put(message(n))
    outbox.close()
    reopened = Outbox(tmp_path / "o.db", ROOMY)
    assert ids(reopened) == ["event-0", "event-1", "event-2"]
    assert reopened.depth == 3 and reopened.size_bytes == 30


def test_messages_survive_kill_9(tmp_path):
    path = tmp_path / "o.db"
    script = f"""
import os, signal
from pathlib import Path
from edge.outbox import Outbox, OutboxLimits
from edge.publisher import OutgoingMessage
outbox = Outbox(Path({str(path)!r}), OutboxLimits(1000, 10_000_000, 3600))
for n in range(50):
    outbox.put(OutgoingMessage("faces.detected.t.s.c", f"event-{{n}}", b"x" * 100))
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == -signal.SIGKILL
    assert ids(Outbox(path, ROOMY)) == [f"event-{n}" for n in range(50)]


def test_count_bound_drops_the_oldest_and_counts_them(tmp_path):
    outbox = Outbox(tmp_path / "o.db", OutboxLimits(max_events=3, max_bytes=10_000, max_age_seconds=3600))
    for n in range(5):
        outbox.put(message(n))
    assert ids(outbox) == ["event-2", "event-3", "event-4"]
    assert outbox.dropped["count"] == 2


def test_byte_bound_drops_the_oldest_until_it_fits(tmp_path):
    outbox = Outbox(tmp_path / "o.db", OutboxLimits(max_events=100, max_bytes=1024, max_age_seconds=3600))
    for n in range(5):
        outbox.put(message(n, size=300))
    assert ids(outbox) == ["event-2", "event-3", "event-4"]
    assert outbox.size_bytes == 900 and outbox.dropped["bytes"] == 2


def test_age_bound_drops_what_is_older_than_the_limit(tmp_path):
    now = [1000.0]
    outbox = Outbox(tmp_path / "o.db", OutboxLimits(100, 10_000, max_age_seconds=60), clock=lambda: now[0])
    outbox.put(message(0))
    now[0] += 30
    outbox.put(message(1))
    now[0] += 40  # event-0 is now 70 s old, event-1 40 s
    outbox.enforce_limits()
    assert ids(outbox) == ["event-1"]
    assert outbox.dropped["age"] == 1


def test_a_refused_message_is_moved_aside_with_its_reason_and_the_rest_keep_their_order(tmp_path):
    outbox = Outbox(tmp_path / "o.db", ROOMY)
    for n in range(3):
        outbox.put(message(n))
    outbox.move_aside(outbox.oldest(1)[0].seq, "message of 2000000 bytes is over the server's max_payload")
    assert ids(outbox) == ["event-1", "event-2"]
    assert outbox.depth == 2 and outbox.size_bytes == 20
    outbox.close()
    reopened = Outbox(tmp_path / "o.db", ROOMY)  # the dead table is durable too
    assert reopened.dead() == [("event-0", "message of 2000000 bytes is over the server's max_payload")]
    assert reopened.dead_count == 1 and ids(reopened) == ["event-1", "event-2"]


def test_dead_messages_are_bounded_by_age_and_count(tmp_path, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("edge.outbox.MAX_DEAD_EVENTS", 2)
    outbox = Outbox(tmp_path / "o.db", OutboxLimits(100, 10_000, max_age_seconds=60), clock=lambda: now[0])
    for n in range(3):
        outbox.put(message(n))
        outbox.move_aside(outbox.oldest(1)[0].seq, f"refused {n}")
    assert [event_id for event_id, _ in outbox.dead()] == ["event-1", "event-2"]
    now[0] += 61
    outbox.enforce_limits()
    assert outbox.dead() == []
