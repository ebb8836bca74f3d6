"""What makes a detected face acceptable, beyond its schema: checks that need no I/O."""

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

from schemas import FaceDetected
from schemas.models import embedding_dimension
from services.common.bus import InvalidEvent

JPEG_MAGIC = b"\xff\xd8\xff"
MAX_EMBEDDING_VALUES = 2048
"""The schema's longest embedding (`schemas.faces.Embedding`)."""
JSON_CHARS_PER_VALUE = 32
"""A float64 in JSON is at most 24 characters (`-1.2345678901234567e-100`) and its comma; the rest is room for a
pretty-printed body's newline and indent."""
EVENT_FIELDS_ALLOWANCE = 16 * 1024
"""Every other field of a FaceDetected (ids, box, landmarks, times) fits in a few hundred bytes; the rest is margin."""


def check_subject_matches(event: FaceDetected, subject: str) -> None:
    """The subject is what permissions filter on, so it must name the event's own tenant, site and camera."""
    expected = f"faces.detected.{event.tenant_id}.{event.site_id}.{event.camera_id}"
    if subject != expected:
        raise InvalidEvent(f"subject {subject} does not match the event's tenant/site/camera ({expected})")


def check_track_id(track_id: str) -> None:
    """An edge's track id is carried to every downstream event and shown to operators: printable text only (a
    NUL or a control character is refused here, at the trust boundary, found by the fuzz lane)."""
    if not track_id.isprintable():
        raise InvalidEvent(f"track_id {track_id!r} has a control character (NUL, newline...)")


def check_embedding(embedding: list[float]) -> None:
    if not all(math.isfinite(value) for value in embedding):
        raise InvalidEvent("embedding has NaN or infinite values")
    if math.sqrt(sum(value * value for value in embedding)) < 1e-6:
        raise InvalidEvent("embedding is all zeros")


def check_crop(crop: bytes | None, max_bytes: int) -> None:
    if crop is None:
        return
    if len(crop) > max_bytes:
        raise InvalidEvent(f"crop is {len(crop)} bytes, more than the limit of {max_bytes}")
    if not crop.startswith(JPEG_MAGIC):
        raise InvalidEvent("crop is not a JPEG")


def check_embedding_model(model_id: str, length: int, known: Mapping[str, int]) -> None:
    """Only known models, with vectors of their own length: the matcher keeps a Milvus collection per model, so
    an arbitrary model id would create one, and a wrong length could never be compared."""
    dimension = embedding_dimension(model_id, known)
    if dimension is None:
        names = ", ".join(sorted(known))
        raise InvalidEvent(f"embedding_model {model_id!r} is not a known model (<name>@<8 hex>, name one of: {names})")
    if length != dimension:
        raise InvalidEvent(f"embedding has {length} values; {model_id} gives {dimension}")


def check_capture_time(captured_at: datetime, now: datetime, max_skew: timedelta, max_age: timedelta) -> None:
    """A sighting from further in the future than clock skew explains, or older than an edge keeps events in its
    outbox, is a wrong clock or a forged event: counted, it would land in a day long reported."""
    if captured_at > now + max_skew:
        raise InvalidEvent(f"captured_at {captured_at.isoformat()} is in the future (edge clock skew?)")
    if captured_at < now - max_age:
        raise InvalidEvent(
            f"captured_at {captured_at.isoformat()} is older than {_days(max_age)} (the edges' outbox maximum age): "
            "a wrong edge clock or a stale replay"
        )


def _days(age: timedelta) -> str:
    return f"{age.total_seconds() / 86400:g} days"


def largest_event_bytes(max_crop_bytes: int) -> int:
    """The largest JSON body a legal FaceDetected can have: its crop in base64 (4 bytes per 3), the longest
    embedding the schema allows, and the other fields with margin. Anything longer is refused unread."""
    crop_base64 = 4 * math.ceil(max_crop_bytes / 3)
    return crop_base64 + MAX_EMBEDDING_VALUES * JSON_CHARS_PER_VALUE + EVENT_FIELDS_ALLOWANCE


def crop_key(event: FaceDetected) -> str:
    """`<tenant>/<site>/<yyyy>/<mm>/<dd>/<event_id>.jpg`: per-tenant prefixes make retention and erasure cheap."""
    day = event.captured_at
    return f"{event.tenant_id}/{event.site_id}/{day:%Y}/{day:%m}/{day:%d}/{event.event_id}.jpg"
