"""`/review`: the matcher's duplicate suggestions side by side; an admin merges a pair or marks it "not the
same", and undoes a merge by its operation id."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.console.adapters.apis import ApiRefused, ServiceApi
from services.console.rendering import page, redirect
from services.console.session import SignedIn

router = APIRouter(include_in_schema=False)
SUGGESTIONS = 20


async def person_or_none(identity: ServiceApi, person_id: str) -> dict[str, Any] | None:
    """The person with a few sightings, or None if it is gone (merged or erased since the suggestion)."""
    try:
        found: dict[str, Any] = await identity.get(f"/v1/persons/{person_id}", limit=3)
    except ApiRefused as refusal:
        if refusal.status_code == 404:
            return None
        raise
    return found


@router.get("/review")
async def review_queue(
    request: Request, user: SignedIn, min_similarity: Annotated[float, Query(ge=0, le=1)] = 0.5
) -> HTMLResponse:
    """The most alike pairs first; `min_similarity` lowers or raises the bar (the matcher's 0.5 by default)."""
    pairs = []
    if user.may_review:
        found = await user.apis.matcher.get("/v1/persons/duplicates", limit=SUGGESTIONS, min_similarity=min_similarity)
        suggestions = found["items"]
        for suggestion in suggestions:
            one = await person_or_none(user.apis.identity, suggestion["person_id"])
            other = await person_or_none(user.apis.identity, suggestion["other_person_id"])
            if one is not None and other is not None:
                pairs.append({"suggestion": suggestion, "one": one, "other": other})
    return page(request, "review.html", user, "Review", pairs=pairs, min_similarity=min_similarity)


@router.post("/review/merge")
async def merge(
    user: SignedIn, person_id: Annotated[uuid.UUID, Form()], other_person_id: Annotated[uuid.UUID, Form()]
) -> Response:
    """Keep `person_id`; the other's sightings, vectors and visits become its."""
    try:
        accepted = await user.apis.identity.send(
            "POST", f"/v1/persons/{person_id}/merge", {"person_ids": [str(other_person_id)]}
        )
    except ApiRefused as refusal:
        return redirect("/review", error=refusal.detail)
    return redirect(f"/operations/{accepted['operation_id']}", notice="merge requested")


@router.post("/review/not-same")
async def not_same(
    user: SignedIn, person_id: Annotated[uuid.UUID, Form()], other_person_id: Annotated[uuid.UUID, Form()]
) -> Response:
    try:
        await user.apis.identity.send("POST", f"/v1/persons/{person_id}/not-same", {"person_id": str(other_person_id)})
    except ApiRefused as refusal:
        return redirect("/review", error=refusal.detail)
    return redirect("/review", notice="marked as different people: the pair is not suggested again")


@router.post("/review/undo")
async def undo_by_id(user: SignedIn, operation_id: Annotated[str, Form()]) -> Response:
    try:
        operation = uuid.UUID(operation_id.strip())
    except ValueError:
        return redirect("/review", error="an operation id is a UUID (the merge's page shows it)")
    return redirect(f"/operations/{operation}")
