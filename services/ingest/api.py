"""HTTP ingest for edges that cannot reach NATS: the event joins the same JetStream path as a published one.

The body is not a FastAPI body parameter on purpose: FastAPI reads and parses a declared body before it runs
any dependency, so a caller without a token could make ingest read and decode any amount of JSON. Here the
token is checked first, then the body's length, and only then is it read (at most the limit) and parsed.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ValidationError

from schemas import FaceDetected, subjects
from services.common.auth import Principal, Role, require_roles
from services.common.bus import EventPublisher, InvalidEvent
from services.common.http import read_body_within
from services.ingest.config import IngestSettings
from services.ingest.handlers import validate_detected

router = APIRouter(prefix="/v1", tags=["ingest"])
Device = Annotated[Principal, Depends(require_roles(Role.DEVICE, Role.ADMIN))]


class Accepted(BaseModel):
    event_id: str
    subject: str


def _documented_body() -> dict[str, Any]:
    """The OpenAPI request body, since the route reads its body itself: FaceDetected.v1's JSON Schema, its
    nested models inlined (an operation cannot carry `$defs` of its own)."""
    schema = FaceDetected.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


def parse_detected(body: bytes) -> FaceDetected:
    """The body as a FaceDetected, or 422 with pydantic's reasons (as FastAPI answers for a declared body)."""
    try:
        return FaceDetected.model_validate_json(body)
    except ValidationError as error:
        details = error.errors(include_url=False, include_input=False, include_context=False)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, details) from error


@router.post("/faces", status_code=status.HTTP_202_ACCEPTED, openapi_extra=_documented_body())
async def post_face(principal: Device, request: Request) -> Accepted:
    """Accept one FaceDetected.v1 body; it is durable in JetStream when this returns 202 (retries are deduplicated).
    401 without a valid token and 413 over the size limit, both before the body is read."""
    settings: IngestSettings = request.app.state.settings
    event = parse_detected(await read_body_within(request, settings.body_limit))
    if not principal.may_access(event.tenant_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token is for tenant {principal.tenant_id}")
    publish: EventPublisher = request.app.state.publish
    subject = subjects.face_detected(event.tenant_id, event.site_id, event.camera_id)
    try:
        validate_detected(event, subject, settings, request.app.state.registry, datetime.now(UTC))
    except InvalidEvent as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    await publish(subject, event)
    return Accepted(event_id=str(event.event_id), subject=subject)
