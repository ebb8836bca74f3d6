"""Ingest's handlers: accept a detected face (store the crop, publish FaceIngested) or reject it with a reason;
erase a batch of crops for identity's erasure saga; delete a tenant's expired crops (the `retention` job)."""

import asyncio
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from nats.aio.msg import Msg

from schemas import (
    AuditEntryRecorded,
    CropsErasureRequested,
    FaceDetected,
    FaceIngested,
    FaceRejected,
    OperationStepCompleted,
    subjects,
)
from schemas.base import TOKEN_PATTERN
from schemas.ids import derive_event_id, new_event_id
from schemas.models import EMBEDDING_DIMENSIONS
from schemas.registry import RetentionPolicyEntry
from services.common.bus import EventPublisher
from services.common.logging import get_logger
from services.ingest.adapters.s3 import CropStore
from services.ingest.config import IngestSettings
from services.ingest.domain import erasure, retention, validation
from services.ingest.domain.registry import Registry

MAX_RAW_EVENT_CHARS = 64 * 1024
SERVICE = "ingest"
CROPS_ERASED = "crops_erased"
log = get_logger(__name__)


def validate_detected(
    event: FaceDetected, subject: str, settings: IngestSettings, registry: Registry, now: datetime
) -> None:
    """Every check beyond the schema; raises InvalidEvent with the reason."""
    validation.check_subject_matches(event, subject)
    validation.check_track_id(event.track_id)
    validation.check_embedding_model(event.embedding_model, len(event.embedding), EMBEDDING_DIMENSIONS)
    registry.check(event)
    validation.check_embedding(event.embedding)
    validation.check_crop(event.crop_jpeg, settings.max_crop_bytes)
    validation.check_capture_time(
        event.captured_at,
        now,
        max_skew=timedelta(seconds=settings.max_clock_skew_seconds),
        max_age=timedelta(seconds=settings.outbox_max_age_seconds),
    )


async def ingest_faces(
    detected: Sequence[FaceDetected], crops: CropStore, publish: EventPublisher
) -> list[FaceIngested]:
    """Store the crops of a batch of validated detections, then publish their FaceIngested, each step for the whole
    batch at once (S3 and JetStream round trips overlap; none waits for the CPU). Idempotent: same input, same key
    and the identical event (its id is derived and its occurred_at is the source's), so a redelivery under any
    Nats-Msg-Id, or the same detection twice in a batch, repeats nothing."""
    stored = {validation.crop_key(event): event.crop_jpeg for event in detected if event.crop_jpeg is not None}
    await asyncio.gather(*(crops.put_crop(key, jpeg) for key, jpeg in stored.items()))
    ingested = [_ingested(event) for event in detected]
    await asyncio.gather(
        *(publish(subjects.face_ingested(event.tenant_id, event.site_id), event) for event in ingested)
    )
    log.info("faces_ingested", count=len(ingested), crops=len(stored))
    return ingested


CARRIED_OVER = tuple(
    sorted(set(FaceDetected.model_fields) & set(FaceIngested.model_fields) - {"event_id", "schema_name"})
)
"""What a FaceIngested repeats of its FaceDetected."""


def _ingested(event: FaceDetected) -> FaceIngested:
    """Built without validating again: every value comes from the detection, validated as it was decoded."""
    return FaceIngested.model_construct(
        event_id=derive_event_id(event.event_id, "ingested"),
        source_event_id=event.event_id,
        crop_key=None if event.crop_jpeg is None else validation.crop_key(event),
        **{name: getattr(event, name) for name in CARRIED_OVER},
    )


async def erase_crops(
    request: CropsErasureRequested, crops: CropStore, publish: EventPublisher
) -> OperationStepCompleted:
    """Delete the batch's crops, then announce step `crops/<batch>` done and audit it.

    Idempotent on (operation_id, step): deleting is repeatable (a missing crop counts as deleted) and both
    events are derived from the request alone, so a redelivery, under any Nats-Msg-Id, publishes the
    identical events again; JetStream drops them inside its window and identity and audit dedupe on event id."""
    keys = erasure.crops_to_erase(request)
    await crops.delete_crops(keys)
    step = erasure.erasure_step(request)
    completed = OperationStepCompleted(
        event_id=derive_event_id(request.operation_id, f"ingest/{step}"),
        tenant_id=request.tenant_id,
        occurred_at=request.occurred_at,
        operation_id=request.operation_id,
        service=SERVICE,
        step=step,
        changed=len(keys),
    )
    await publish(subjects.operation_step(SERVICE, request.tenant_id), completed)
    await publish(subjects.audit_entry(SERVICE, CROPS_ERASED, request.tenant_id), _erasure_audit(request, len(keys)))
    log.info("crops_erased", operation_id=str(request.operation_id), step=step, count=len(keys))
    return completed


def _erasure_audit(request: CropsErasureRequested, count: int) -> AuditEntryRecorded:
    """The audit record of one erased batch: how many crops, never which (a key names a sighting)."""
    return AuditEntryRecorded(
        event_id=derive_event_id(request.operation_id, f"ingest/{erasure.erasure_step(request)}/audit"),
        tenant_id=request.tenant_id,
        occurred_at=request.occurred_at,
        service=SERVICE,
        action=CROPS_ERASED,
        actor=SERVICE,
        resource=f"person/{request.person_id}",
        details={"operation_id": str(request.operation_id), "batch": request.batch, "count": count},
    )


async def reject_face(raw: Msg, reason: str, publish: EventPublisher) -> FaceRejected:
    """Publish the refused message with its reason on `faces.rejected.<tenant>` for operators."""
    tenant = subjects.tenant_of_detected(raw.subject) or ""
    rejected = FaceRejected(
        event_id=_rejection_id(raw),
        tenant_id=tenant if re.fullmatch(TOKEN_PATTERN, tenant) else "unknown",
        subject=raw.subject,
        reason=reason[:4000],
        raw_event=raw.data[:MAX_RAW_EVENT_CHARS].decode("utf-8", errors="replace"),
    )
    await publish(subjects.face_rejected(rejected.tenant_id), rejected)
    log.warning("face_rejected", reason=rejected.reason[:500], subject=raw.subject)
    return rejected


def _rejection_id(raw: Msg) -> uuid.UUID:
    """Derived from the refused message's id when it has one, so a redelivery is rejected once."""
    try:
        return derive_event_id(uuid.UUID((raw.headers or {})["Nats-Msg-Id"]), "rejected")
    except (KeyError, ValueError):
        return new_event_id()


async def delete_expired_crops(policy: RetentionPolicyEntry, now: datetime, crops: CropStore) -> dict[str, int]:
    """Ingest's retention for one tenant: delete the crops of UTC days before `now - crops_days`, walking
    `<tenant>/<site>/<yyyy>/<mm>/<dd>/` prefixes (whole expired years or months at once) and deleting a listed
    page per request. A re-run finds nothing left to delete."""
    keep_from = (now - timedelta(days=policy.crops_days)).astimezone(UTC).date()
    deleted = 0
    for site_prefix in await crops.child_prefixes(f"{policy.tenant_id}/"):
        deleted += await _delete_crops_under(crops, site_prefix, [], keep_from)
    return {"crops": deleted}


async def _delete_crops_under(crops: CropStore, prefix: str, date_parts: list[str], keep_from: date) -> int:
    """Delete what is expired under a site's date prefix, descending only into years and months that straddle
    the cutoff."""
    expiry = retention.date_parts_expiry(date_parts, keep_from) if date_parts else retention.Expiry.SOME
    if expiry is retention.Expiry.NONE:
        return 0
    if expiry is retention.Expiry.ALL:
        deleted = 0
        async for keys in crops.key_pages(prefix):
            await crops.delete_crops(keys)
            deleted += len(keys)
        return deleted
    if len(date_parts) == 3:  # a day is all or none; SOME here means it is not a date: keep it
        return 0
    deleted = 0
    for child in await crops.child_prefixes(prefix):
        deleted += await _delete_crops_under(crops, child, [*date_parts, child[len(prefix) :].rstrip("/")], keep_from)
    return deleted
