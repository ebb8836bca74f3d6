"""Audit's REST routes: verify the caller's tenant chain, read its latest records."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
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


@router.get("/verify")
async def verify(principal: Admin, request: Request) -> Verification:
    """Recompute the caller's tenant chain; names the first broken record if any."""
    log: AuditLog = request.app.state.audit_log
    verdict = await verify_tenant_chain(principal.tenant_id, log)
    return Verification(tenant_id=principal.tenant_id, **verdict.__dict__)
