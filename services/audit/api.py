"""Audit's REST routes: verify the caller's tenant chain against its signed checkpoints; read its newest records."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.audit.adapters.postgres import AuditLog
from services.audit.handlers import verify_tenant_chain
from services.common.auth import Principal, Role, require_roles

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.PLATFORM))]


class Verification(BaseModel):
    tenant_id: str
    ok: bool
    records: int
    first_broken_seq: int | None
    reason: str | None
    checkpoints: int
    anchored_through_seq: int | None
    broken_checkpoint_seq: int | None


@router.get("/verify")
async def verify(principal: Admin, request: Request) -> Verification:
    """Recompute the caller's tenant chain and check it passes through every signed checkpoint; names the
    first broken record (or the first records a checkpoint no longer matches) if any."""
    state = request.app.state
    verdict = await verify_tenant_chain(principal.tenant_id, state.audit_log, state.checkpoints, state.public_keys)
    return Verification(tenant_id=principal.tenant_id, **verdict.__dict__)


class EntryOut(BaseModel):
    seq: int
    service: str
    action: str
    actor: str
    resource: str
    details: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime
    hash: str


@router.get("/entries")
async def recent_entries(
    principal: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, list[EntryOut]]:
    """The caller's tenant's newest records, newest first: who did what to which resource, and when."""
    log: AuditLog = request.app.state.audit_log
    records = await log.recent(principal.tenant_id, limit)
    return {"items": [EntryOut.model_validate(record, from_attributes=True) for record in records]}
