"""`python -m edge enrol-staff`: a staff member's photos to their staff gallery entry in NATS KV.

The photos go through the edge's own detector, alignment and embedder, so the vectors are comparable
with those the edge computes from its cameras (same model id). This is how a store enrols staff until
identity enrols from photos itself. The entry goes through identity's `PUT /v1/staff/{staff_id}` (checked
and audited) when an identity URL is given, else straight into the NATS KV gallery. Either way the
command makes one bounded attempt and fails with one line: an operator at a terminal, not a daemon.
"""

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import httpx
import nats
import nats.errors
import numpy as np
from nats.aio.client import Client as NatsClient

from edge.align import align_face
from edge.detector import Detection, Detector
from edge.embedder import OnnxEmbedder
from edge.staff import put_staff_entry
from plumbing.startup import DependencyUnavailable
from schemas.base import TOKEN_PATTERN
from schemas.staff import MAX_STAFF_EMBEDDINGS, StaffGalleryEntry


class EnrolmentError(ValueError):
    """The enrolment cannot be done as asked (a malformed id, an unusable photo, refused by identity); the
    message says why."""


def check_ids(tenant_id: str, staff_id: str) -> None:
    """Refuse ids that could never be KV key tokens, before any model is loaded or server dialled."""
    for name, value in (("tenant", tenant_id), ("staff id", staff_id)):
        if not re.fullmatch(TOKEN_PATTERN, value):
            raise EnrolmentError(f"{name} {value!r} is not a token: 1 to 63 of a-z 0-9 _ -, starting a-z or 0-9")


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


async def connect_once(url: str, credentials: Path | None, timeout_seconds: float) -> NatsClient:
    """One bounded attempt to reach NATS, silently; DependencyUnavailable otherwise.

    nats-py's defaults suit a service (on a first connect, `max_reconnect_attempts=0` still retries forever
    and its error callback logs a traceback per attempt), not a command an operator waits on."""

    async def quiet(error: Exception) -> None:
        return None

    try:
        return await asyncio.wait_for(
            nats.connect(
                url,
                connect_timeout=timeout_seconds,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=quiet,
                user_credentials=str(credentials) if credentials else None,
            ),
            timeout_seconds,
        )
    except (TimeoutError, OSError, nats.errors.Error) as error:
        raise DependencyUnavailable(f"NATS at {url} unreachable: {type(error).__name__} {error}".strip()) from error


async def enrol_through_nats(connection: NatsClient, entry: StaffGalleryEntry, timeout_seconds: float) -> int:
    """Write the entry (replacing any earlier one) into the KV gallery; its revision."""
    try:
        return await asyncio.wait_for(put_staff_entry(connection, entry), timeout_seconds)
    except (TimeoutError, nats.errors.Error) as error:
        raise DependencyUnavailable(f"cannot write the staff gallery: {type(error).__name__} {error}") from error


async def check_identity_reachable(identity_url: str, timeout_seconds: float) -> None:
    """Ask identity's `/healthz` once, so an unreachable identity is said before the models are loaded."""
    try:
        async with httpx.AsyncClient(base_url=identity_url, timeout=timeout_seconds) as client:
            (await client.get("/healthz")).raise_for_status()
    except httpx.HTTPError as error:
        raise DependencyUnavailable(
            f"identity at {identity_url} unreachable: {type(error).__name__} {error}"
        ) from error


async def enrol_through_identity(
    identity_url: str, token: str, entry: StaffGalleryEntry, timeout_seconds: float
) -> int:
    """PUT the entry to identity (which checks the model and dimension, and audits it); the KV revision.

    The tenant is the token's: identity ignores any other."""
    body = entry.model_dump(mode="json", include={"display_name", "embedding_model", "embeddings"})
    try:
        async with httpx.AsyncClient(base_url=identity_url, timeout=timeout_seconds) as client:
            response = await client.put(
                f"/v1/staff/{entry.staff_id}", json=body, headers={"authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as error:
        raise DependencyUnavailable(
            f"identity at {identity_url} unreachable: {type(error).__name__} {error}"
        ) from error
    if response.status_code != httpx.codes.OK:
        raise EnrolmentError(
            f"identity refused the entry ({response.status_code}): {response.text[:500]}".replace("\n", " ")
        )
    return int(response.json()["revision"])
