"""What makes a detected face acceptable, beyond its schema: checks that need no I/O."""

import math
from datetime import datetime, timedelta

from schemas import FaceDetected
from services.common.bus import InvalidEvent

JPEG_MAGIC = b"\xff\xd8\xff"


def check_subject_matches(event: FaceDetected, subject: str) -> None:
    """The subject is what permissions filter on, so it must name the event's own tenant, site and camera."""
    expected = f"faces.detected.{event.tenant_id}.{event.site_id}.{event.camera_id}"
    if subject != expected:
        raise InvalidEvent(f"subject {subject} does not match the event's tenant/site/camera ({expected})")


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


def check_capture_time(captured_at: datetime, now: datetime, max_skew: timedelta) -> None:
    if captured_at > now + max_skew:
        raise InvalidEvent(f"captured_at {captured_at.isoformat()} is in the future (edge clock skew?)")


def crop_key(event: FaceDetected) -> str:
    """`<tenant>/<site>/<yyyy>/<mm>/<dd>/<event_id>.jpg`: per-tenant prefixes make retention and erasure cheap."""
    day = event.captured_at
    return f"{event.tenant_id}/{event.site_id}/{day:%Y}/{day:%m}/{day:%d}/{event.event_id}.jpg"
