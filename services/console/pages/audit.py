"""`/audit`: whether the tenant's audit chain verifies against its signed checkpoints, and its newest entries
(admins only: the audit API refuses the other roles)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console.rendering import page
from services.console.session import SignedIn

router = APIRouter(include_in_schema=False)
RECENT = 50


@router.get("/audit")
async def audit(request: Request, user: SignedIn) -> HTMLResponse:
    if not user.may_change:
        return page(request, "audit.html", user, "Audit", verification=None, entries=[])
    verification = await user.apis.audit.get("/v1/audit/verify")
    entries = (await user.apis.audit.get("/v1/audit/entries", limit=RECENT))["items"]
    return page(request, "audit.html", user, "Audit", verification=verification, entries=entries)
