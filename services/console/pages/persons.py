"""`/persons`: the gallery of the tenant's persons; `/persons/{id}`: one person's sightings, and the admin's
split, kind change and erasure (with confirmation) of it."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console.adapters.apis import ApiRefused
from services.console.domain.persons import GalleryFilter, day_of, timeline_by_day
from services.console.rendering import page, redirect
from services.console.session import SignedIn

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100


@router.get("/persons")
async def gallery(
    request: Request,
    user: SignedIn,
    site_id: str = "",
    cursor: str | None = None,
) -> HTMLResponse:
    """A page of persons, most recently seen first, filtered by first site and the days they were seen."""
    start, end = request.query_params.get("from", ""), request.query_params.get("to", "")  # `from` is a keyword
    params = {"limit": PAGE_SIZE} | ({"cursor": cursor} if cursor else {})
    listing = await user.apis.identity.get("/v1/persons", **params)
    sites = (await user.apis.identity.get("/v1/sites"))["items"]
    keep = GalleryFilter(site_id or None, day_of(start), day_of(end))
    persons = [person for person in listing["items"] if keep.keeps(person)]
    return page(
        request,
        "persons.html",
        user,
        "Persons",
        persons=persons,
        sites=sites,
        site_id=site_id,
        start=start,
        end=end,
        next_cursor=listing["next_cursor"],
    )


@router.get("/persons/{person_id}")
async def person(request: Request, user: SignedIn, person_id: uuid.UUID, cursor: str | None = None) -> HTMLResponse:
    params = {"limit": PAGE_SIZE} | ({"cursor": cursor} if cursor else {})
    detail = await user.apis.identity.get(f"/v1/persons/{person_id}", **params)
    return page(
        request,
        "person.html",
        user,
        f"Person {str(person_id)[:8]}",
        person=detail,
        timeline=timeline_by_day(detail["sightings"]),
    )


@router.post("/persons/{person_id}/split")
async def split(
    user: SignedIn,
    person_id: uuid.UUID,
    sighting_ids: Annotated[list[uuid.UUID], Form()] = [],  # noqa: B006
) -> Response:
    """Move the selected sightings to a new person; the operation's page follows the saga."""
    if not sighting_ids:
        return redirect(f"/persons/{person_id}", error="select the sightings to split off")
    try:
        accepted = await user.apis.identity.send(
            "POST", f"/v1/persons/{person_id}/split", {"sighting_ids": [str(s) for s in sighting_ids]}
        )
    except ApiRefused as refusal:
        return redirect(f"/persons/{person_id}", error=refusal.detail)
    return redirect(f"/operations/{accepted['operation_id']}", notice="split requested")


@router.post("/persons/{person_id}/kind")
async def change_kind(user: SignedIn, person_id: uuid.UUID, kind: Annotated[str, Form()]) -> Response:
    try:
        accepted = await user.apis.identity.send("PUT", f"/v1/persons/{person_id}/kind", {"kind": kind})
    except ApiRefused as refusal:
        return redirect(f"/persons/{person_id}", error=refusal.detail)
    return redirect(f"/operations/{accepted['operation_id']}", notice=f"marking as {kind} requested")


@router.get("/persons/{person_id}/erase")
async def confirm_erasure(request: Request, user: SignedIn, person_id: uuid.UUID) -> HTMLResponse:
    """Erasure cannot be undone: it is asked for on a page of its own, showing whom."""
    detail = await user.apis.identity.get(f"/v1/persons/{person_id}", limit=1)
    return page(request, "erase.html", user, "Erase a person", person=detail)


@router.post("/persons/{person_id}/erase")
async def erase(user: SignedIn, person_id: uuid.UUID, confirm: Annotated[str, Form()] = "") -> Response:
    if confirm != "erase":
        return redirect(f"/persons/{person_id}/erase", error="type erase to confirm")
    try:
        accepted = await user.apis.identity.send("DELETE", f"/v1/persons/{person_id}")
    except ApiRefused as refusal:
        return redirect(f"/persons/{person_id}", error=refusal.detail)
    return redirect(f"/operations/{accepted['operation_id']}", notice="erasure requested")
