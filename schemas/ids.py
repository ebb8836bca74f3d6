"""Event identifiers: UUIDv7, and deterministic UUIDv7s for events derived from another one.

A consumer that is redelivered an event must publish the *same* derived event again, so that
JetStream's `Nats-Msg-Id` window and every downstream consumer drop the copy. Deriving the id from
the source event id (keeping its timestamp, hashing the rest) gives that without any lookup.
"""

import hashlib
import uuid

import uuid6


def new_event_id() -> uuid.UUID:
    """A fresh, time-ordered UUIDv7."""
    return uuid.UUID(int=uuid6.uuid7().int)


def derive_event_id(source_id: uuid.UUID, kind: str) -> uuid.UUID:
    """The UUIDv7 of the `kind` event derived from `source_id`: same input, same id."""
    timestamp_ms = source_id.int >> 80 if source_id.version == 7 else 0
    digest = int.from_bytes(hashlib.sha256(f"{source_id}:{kind}".encode()).digest()[:10], "big")
    value = (timestamp_ms << 80) | (0x7 << 76) | (digest & ((1 << 76) - 1))
    value &= ~(0x3 << 62)  # clear the variant bits ...
    value |= 0x2 << 62  # ... and set RFC 4122's
    return uuid.UUID(int=value)
