"""The on-disk outbox: every event is written here first and deleted only after JetStream's PubAck.

SQLite in WAL mode with `synchronous=FULL`: a committed insert survives `kill -9` and power loss, so an
event the pipeline produced is either still here or acknowledged by JetStream. A crash between PubAck and
delete replays the event; its `Nats-Msg-Id` makes JetStream drop the copy. The outbox is bounded by
count, bytes and age; the oldest events are dropped first, counted in metrics and logged, because an
edge that was offline for days must keep running on a small disk.

A message the bus refuses for good (too large, invalid) is moved to the `dead` table with the reason, in one
transaction, so the events behind it still go out; the dead rows are kept for operators to inspect, bounded
by the same maximum age and by `MAX_DEAD_EVENTS`.
"""

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.metrics import OUTBOX_DEAD, OUTBOX_DEPTH, OUTBOX_DROPPED
from edge.publisher import OutgoingMessage
from plumbing.logging import get_logger

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
"""
MAX_DEAD_EVENTS = 1000
"""Dead events kept for inspection; the oldest go first. They are refused for good, so only a few matter."""


@dataclass(frozen=True)
class OutboxLimits:
    max_events: int
    max_bytes: int
    max_age_seconds: float


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    message: OutgoingMessage


class Outbox:
    """A FIFO of outgoing messages in one SQLite file; used from one thread (the event loop's)."""

    def __init__(self, path: Path, limits: OutboxLimits, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._limits, self._clock = limits, clock
        self.dropped: dict[str, int] = {"age": 0, "count": 0, "bytes": 0}
        for reason in self.dropped:  # exported at 0 from the start, so the first drop is a visible increase
            OUTBOX_DROPPED.labels(reason)
        count, size = self._db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox").fetchone()
        self._depth, self._bytes = int(count), int(size)
        OUTBOX_DEPTH.set(self._depth)

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def put(self, message: OutgoingMessage) -> None:
        """Store durably (a repeated event id is ignored), then enforce the bounds oldest-first."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO outbox (event_id, subject, payload, created_at) VALUES (?, ?, ?, ?)",
            (message.event_id, message.subject, message.payload, self._clock()),
        )
        if cursor.rowcount:
            self._depth, self._bytes = self._depth + 1, self._bytes + len(message.payload)
        self.enforce_limits()

    def oldest(self, limit: int) -> list[OutboxRow]:
        rows = self._db.execute(
            "SELECT seq, subject, event_id, payload FROM outbox ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [
            OutboxRow(seq, OutgoingMessage(subject, event_id, bytes(payload)))
            for seq, subject, event_id, payload in rows
        ]

    def delete(self, seq: int) -> None:
        """Forget an acknowledged message."""
        row = self._db.execute("DELETE FROM outbox WHERE seq = ? RETURNING length(payload)", (seq,)).fetchone()
        if row:
            self._depth, self._bytes = self._depth - 1, self._bytes - int(row[0])
            OUTBOX_DEPTH.set(self._depth)

    def move_aside(self, seq: int, reason: str) -> None:
        """Move a message the bus refuses for good to the `dead` table with `reason`, atomically, so it no longer
        blocks the messages behind it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            moved = self._db.execute(
                "INSERT INTO dead (seq, event_id, subject, payload, created_at, reason, dead_at) "
                "SELECT seq, event_id, subject, payload, created_at, ?, ? FROM outbox WHERE seq = ? "
                "RETURNING event_id, length(payload)",
                (reason, self._clock(), seq),
            ).fetchone()
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._db.execute(
                "DELETE FROM dead WHERE seq <= (SELECT seq FROM dead ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (MAX_DEAD_EVENTS,),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if moved:
            self._depth, self._bytes = self._depth - 1, self._bytes - int(moved[1])
            OUTBOX_DEPTH.set(self._depth)
            OUTBOX_DEAD.inc()
            log.error("outbox_event_moved_aside", event_id=moved[0], reason=reason, depth=self._depth)

    def dead(self) -> list[tuple[str, str]]:
        """The (event id, reason) of each message set aside, oldest first."""
        return [
            (str(row[0]), str(row[1])) for row in self._db.execute("SELECT event_id, reason FROM dead ORDER BY seq")
        ]

    @property
    def dead_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM dead").fetchone()[0])

    def enforce_limits(self) -> None:
        """Drop what is too old, then the oldest beyond the count and byte bounds."""
        self._db.execute("DELETE FROM dead WHERE created_at < ?", (self._clock() - self._limits.max_age_seconds,))
        self._drop("age", "created_at < ?", self._clock() - self._limits.max_age_seconds)
        excess = self._depth - self._limits.max_events
        if excess > 0:
            self._drop("count", "seq <= (SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?)", excess - 1)
        if self._bytes > self._limits.max_bytes:
            self._drop("bytes", "seq <= ?", self._last_seq_to_free(self._bytes - self._limits.max_bytes))
        OUTBOX_DEPTH.set(self._depth)

    def _last_seq_to_free(self, excess_bytes: int) -> int:
        freed, last = 0, 0
        for seq, size in self._db.execute("SELECT seq, length(payload) FROM outbox ORDER BY seq"):
            freed, last = freed + int(size), int(seq)
            if freed >= excess_bytes:
                break
        return last

    def _drop(self, reason: str, condition: str, parameter: float) -> None:
        count, size = self._db.execute(
            f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox WHERE {condition}", (parameter,)
        ).fetchone()
        if not count:
            return
        self._db.execute(f"DELETE FROM outbox WHERE {condition}", (parameter,))
        self._depth, self._bytes = self._depth - int(count), self._bytes - int(size)
        self.dropped[reason] += int(count)
        OUTBOX_DROPPED.labels(reason).inc(int(count))
        log.warning("outbox_dropped_oldest", reason=reason, dropped=int(count), depth=self._depth)

    def close(self) -> None:
        self._db.close()
