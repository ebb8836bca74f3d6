"""`python -m edge enrol-staff`: a staff member's photos to their staff gallery entry in NATS KV.

The photos go through the edge's own detector, alignment and embedder, so the vectors are comparable
with those the edge computes from its cameras (same model id). This is how a store enrols staff until
identity enrols from photos itself; identity's `PUT /v1/staff/{staff_id}` takes vectors computed like this.
"""

from collections.abc import Sequence
from pathlib import Path

import cv2
import nats
import numpy as np

from edge.align import align_face
from edge.detector import Detection, Detector
from edge.embedder import OnnxEmbedder
from edge.staff import put_staff_entry
from schemas.staff import MAX_STAFF_EMBEDDINGS, StaffGalleryEntry, staff_entry


class EnrolmentError(ValueError):
    """A photo cannot be used (unreadable, no face); the message names it."""


def largest(detections: Sequence[Detection]) -> Detection:
    return max(detections, key=lambda d: d.box.width * d.box.height)


def embed_photos(detector: Detector, embedder: OnnxEmbedder, photos: Sequence[Path]) -> list[list[float]]:
    """One vector per photo, of its largest face (a staff photo may show a colleague in the background)."""
    if not 1 <= len(photos) <= MAX_STAFF_EMBEDDINGS:
        raise EnrolmentError(f"give 1 to {MAX_STAFF_EMBEDDINGS} photos, not {len(photos)}")
    aligned = []
    for path in photos:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EnrolmentError(f"cannot read the photo {path}")
        detections = detector.detect(np.asarray(image, dtype=np.uint8))
        if not detections:
            raise EnrolmentError(f"no face found in {path}")
        aligned.append(align_face(np.asarray(image, dtype=np.uint8), largest(detections).landmarks))
    return [[float(value) for value in vector] for vector in embedder.embed(aligned)]


async def enrol_staff(
    connection_url: str,
    tenant_id: str,
    staff_id: str,
    vectors: list[list[float]],
    embedding_model: str,
    display_name: str | None,
    timeout_seconds: float,
) -> tuple[StaffGalleryEntry, int]:
    """Write the entry (replacing any earlier one); the entry and its KV revision."""
    entry = staff_entry(tenant_id, staff_id, embedding_model, vectors, display_name)
    connection = await nats.connect(connection_url, connect_timeout=timeout_seconds, max_reconnect_attempts=0)
    try:
        return entry, await put_staff_entry(connection, entry)
    finally:
        await connection.close()
