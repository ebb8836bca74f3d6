"""HTTP ingest for edges that cannot reach NATS: the event joins the same JetStream path as a published one."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel

from schemas import FaceDetected, subjects
from services.common.auth import Principal, Role, require_roles
from services.common.bus import EventPublisher, InvalidEvent
from services.ingest.config import IngestSettings
from services.ingest.handlers import validate_detected

router = APIRouter(prefix="/v1", tags=["ingest"])
Device = Annotated[Principal, Depends(require_roles(Role.DEVICE, Role.ADMIN))]


class Accepted(BaseModel):
    event_id: str
    subject: str


@router.post("/faces", status_code=status.HTTP_202_ACCEPTED)
async def post_face(event: FaceDetected, principal: Device, request: Request) -> Accepted:
    """Accept one FaceDetected; it is durable in JetStream when this returns 202 (retries are deduplicated)."""
    if not principal.may_access(event.tenant_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token is for tenant {principal.tenant_id}")
    settings: IngestSettings = request.app.state.settings
    publish: EventPublisher = request.app.state.publish
    subject = subjects.face_detected(event.tenant_id, event.site_id, event.camera_id)
    try:
        validate_detected(event, subject, settings, datetime.now(UTC))
    except InvalidEvent as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    await publish(subject, event)
    return Accepted(event_id=str(event.event_id), subject=subject)
