"""`/operations/{id}`: a merge, split, erasure or kind change as it goes through every service; an admin
undoes a merge from here."""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.adapters.apis import ApiRefused
from services.console.rendering import page, redirect
from services.console.session import SignedIn

router = APIRouter(include_in_schema=False)


@router.get("/operations/{operation_id}")
async def operation(request: Request, user: SignedIn, operation_id: uuid.UUID) -> HTMLResponse:
    """The operation's steps (a page that reloads itself would fail WCAG 2.2.1, so the user reloads it)."""
    found = await user.apis.identity.get(f"/v1/operations/{operation_id}")
    return page(request, "operation.html", user, f"Operation {found['kind']}", operation=found)


@router.post("/operations/{operation_id}/undo")
async def undo(user: SignedIn, operation_id: uuid.UUID) -> Response:
    try:
        accepted = await user.apis.identity.send("POST", f"/v1/operations/{operation_id}/undo")
    except ApiRefused as refusal:
        return redirect(f"/operations/{operation_id}", error=refusal.detail)
    notice = "undo requested: the merged persons are split back"
    return redirect(f"/operations/{accepted['operation_id']}", notice=notice)
