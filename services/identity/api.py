"""Identity's REST routes: the persons of the caller's tenant and their lifecycle operations.

Admins change (merge, split, "not the same", erase, undo); analysts and viewers read. The tenant is the
token's. Changes answer 202 with an operation to follow at `GET /v1/operations/{id}`.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from schemas import PersonKind
from services.common.auth import Principal, Role, require_roles
from services.common.bus import EventPublisher
from services.identity import handlers
from services.identity.adapters.crops import CropLinks
from services.identity.adapters.lifecycle import LifecycleStore, OperationView
from services.identity.adapters.postgres import Person, PersonDirectory
from services.identity.domain.lifecycle import LifecycleError, PageCursor, PersonBusy, PersonNotFound

router = APIRouter(prefix="/v1", tags=["persons"])
Reader = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.ANALYST, Role.VIEWER))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Limit = Annotated[int, Query(ge=1, le=500)]


class PersonOut(BaseModel):
    person_id: uuid.UUID
    kind: PersonKind
    first_site_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    sightings: int
    thumbnail_url: str | None


class PersonPage(BaseModel):
    items: list[PersonOut]
    next_cursor: str | None


class SightingOut(BaseModel):
    sighting_id: uuid.UUID
    captured_at: datetime
    site_id: str
    camera_id: str
    similarity: float | None
    crop_url: str | None


class PersonDetail(BaseModel):
    person_id: uuid.UUID
    kind: PersonKind
    first_site_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    sighting_count: int
    thumbnail_url: str | None
    sightings: list[SightingOut]
    """A page of the sightings, newest first; `next_cursor` fetches the next."""
    next_cursor: str | None


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sighting_ids: list[uuid.UUID] = Field(min_length=1, max_length=10000)


class KindIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: PersonKind


class NotSameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: uuid.UUID


class OperationAccepted(BaseModel):
    operation_id: uuid.UUID
    status: str


class StepOut(BaseModel):
    service: str
    step: str
    status: str
    at: datetime | None
    changed: int | None


class OperationOut(BaseModel):
    operation_id: uuid.UUID
    kind: str
    status: str
    person_id: uuid.UUID
    steps: list[StepOut]
    result: dict[str, object]
    created_at: datetime
    updated_at: datetime


def directory_of(request: Request) -> PersonDirectory:
    directory: PersonDirectory = request.app.state.directory
    return directory


def lifecycle_of(request: Request) -> tuple[LifecycleStore, EventPublisher]:
    return request.app.state.lifecycle, request.app.state.publish


def links_of(request: Request) -> CropLinks:
    links: CropLinks = request.app.state.crop_links
    return links


def cursor_of(text: str | None) -> PageCursor | None:
    try:
        return None if text is None else PageCursor.decode(text)
    except LifecycleError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from error


@router.get("/persons")
async def list_persons(
    principal: Reader, request: Request, limit: Limit = 100, cursor: str | None = None
) -> PersonPage:
    """Persons of the caller's tenant, most recently seen first, a page at a time."""
    summaries = await directory_of(request).list_persons(principal.tenant_id, limit, cursor_of(cursor))
    links = links_of(request)
    items = [await person_out(s.person, await links.link(s.thumbnail_key)) for s in summaries]
    last = summaries[-1].person if len(summaries) == limit else None
    return PersonPage(
        items=items, next_cursor=None if last is None else PageCursor(last.last_seen_at, last.person_id).encode()
    )


class StaffSuggestionOut(BaseModel):
    person_id: uuid.UUID
    days_seen: int
    working_days: int
    median_hours_per_day: float


@router.get("/persons/staff-suggestions")
async def staff_suggestions(
    principal: Reader,
    request: Request,
    days: Annotated[int, Query(ge=7, le=90)] = 28,
    min_share: Annotated[float, Query(gt=0, le=1)] = 0.6,
    min_hours: Annotated[float, Query(ge=0, le=24)] = 2.0,
    limit: Limit = 50,
) -> dict[str, list[StaffSuggestionOut]]:
    """Customers who look like staff: seen on at least `min_share` of the working days of the last `days`
    days, for a median of `min_hours` or more each day. Enrol them as staff (`PUT /v1/staff/{id}`) or leave them."""
    rows = await directory_of(request).staff_suggestions(
        principal.tenant_id, datetime.now(UTC), days, min_share, min_hours, limit
    )
    return {
        "items": [
            StaffSuggestionOut(
                person_id=r.person_id,
                days_seen=r.days_seen,
                working_days=r.working_days,
                median_hours_per_day=round(r.median_hours, 2),
            )
            for r in rows
        ]
    }


@router.get("/persons/{person_id}")
async def get_person(
    person_id: uuid.UUID, principal: Reader, request: Request, limit: Limit = 100, cursor: str | None = None
) -> PersonDetail:
    """A person with a page of its sightings (newest first), each with a crop link."""
    directory, links = directory_of(request), links_of(request)
    person = await directory.get_person(principal.tenant_id, person_id)
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {person_id} in tenant {principal.tenant_id}")
    sightings = await directory.list_sightings(principal.tenant_id, person_id, limit, cursor_of(cursor))
    page = [
        SightingOut(
            sighting_id=s.sighting_id,
            captured_at=s.captured_at,
            site_id=s.site_id,
            camera_id=s.camera_id,
            similarity=s.similarity,
            crop_url=await links.link(s.crop_key),
        )
        for s in sightings
    ]
    last = sightings[-1] if len(sightings) == limit else None
    return PersonDetail(
        person_id=person.person_id,
        kind=person.kind,
        first_site_id=person.first_site_id,
        first_seen_at=person.first_seen_at,
        last_seen_at=person.last_seen_at,
        sighting_count=person.sightings,
        thumbnail_url=next((s.crop_url for s in reversed(page) if s.crop_url), None),
        sightings=page,
        next_cursor=None if last is None else PageCursor(last.captured_at, last.sighting_id).encode(),
    )


@router.post("/persons/{person_id}/merge", status_code=status.HTTP_202_ACCEPTED)
async def merge(person_id: uuid.UUID, body: MergeIn, principal: Admin, request: Request) -> OperationAccepted:
    """Merge the listed persons into this one (their sightings, vectors and visits become its)."""
    store, publish = lifecycle_of(request)
    with lifecycle_errors():
        operation_id = await handlers.merge_persons(
            principal.tenant_id, person_id, body.person_ids, principal.subject, store, publish
        )
    return await accepted(store, principal.tenant_id, operation_id)


@router.post("/persons/{person_id}/split", status_code=status.HTTP_202_ACCEPTED)
async def split(person_id: uuid.UUID, body: SplitIn, principal: Admin, request: Request) -> OperationAccepted:
    """Move the listed sightings to a new person; the finished operation's result names it."""
    store, publish = lifecycle_of(request)
    with lifecycle_errors():
        operation_id = await handlers.split_person(
            principal.tenant_id, person_id, body.sighting_ids, principal.subject, store, publish
        )
    return await accepted(store, principal.tenant_id, operation_id)


@router.put("/persons/{person_id}/kind", status_code=status.HTTP_202_ACCEPTED)
async def change_kind(person_id: uuid.UUID, body: KindIn, principal: Admin, request: Request) -> OperationAccepted:
    """Mark a person as staff (its visits leave every count, later faces are staff) or as a customer again."""
    store, publish = lifecycle_of(request)
    with lifecycle_errors():
        operation_id = await handlers.change_kind(
            principal.tenant_id, person_id, body.kind, principal.subject, store, publish
        )
    return await accepted(store, principal.tenant_id, operation_id)


@router.post("/persons/{person_id}/not-same")
async def not_same(person_id: uuid.UUID, body: NotSameIn, principal: Admin, request: Request) -> dict[str, str]:
    """These are different people: the matcher never joins a face of one to the other, and the pair is never
    suggested as duplicates again."""
    store, publish = lifecycle_of(request)
    with lifecycle_errors():
        await handlers.mark_different(principal.tenant_id, person_id, body.person_id, principal.subject, store, publish)
    return {"person_id": str(person_id), "other_person_id": str(body.person_id), "status": "marked_different"}


@router.delete("/persons/{person_id}", status_code=status.HTTP_202_ACCEPTED)
async def erase(person_id: uuid.UUID, principal: Admin, request: Request) -> OperationAccepted:
    """Erase the person: its vectors, crops, sightings, visits and row, in every store. The audit keeps who,
    when and which id."""
    store, publish = lifecycle_of(request)
    with lifecycle_errors():
        operation_id = await handlers.erase_person(principal.tenant_id, person_id, principal.subject, store, publish)
    return await accepted(store, principal.tenant_id, operation_id)


@router.get("/operations/{operation_id}")
async def get_operation(operation_id: uuid.UUID, principal: Reader, request: Request) -> OperationOut:
    store, _ = lifecycle_of(request)
    operation = await store.get_operation(principal.tenant_id, operation_id)
    if operation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no operation {operation_id} in tenant {principal.tenant_id}")
    return operation_out(operation)


@router.post("/operations/{operation_id}/undo", status_code=status.HTTP_202_ACCEPTED)
async def undo(operation_id: uuid.UUID, principal: Admin, request: Request) -> OperationAccepted:
    """Undo a merge: each person it joined is split back out under its old id, with the sightings it had,
    one split after another; the answer is the first split, whose result names the next (`then_split`)."""
    store, publish = lifecycle_of(request)
    with lifecycle_errors():
        first = await handlers.undo_merge(principal.tenant_id, operation_id, principal.subject, store, publish)
    return await accepted(store, principal.tenant_id, first)


async def person_out(person: Person, thumbnail_url: str | None) -> PersonOut:
    return PersonOut(
        person_id=person.person_id,
        kind=person.kind,
        first_site_id=person.first_site_id,
        first_seen_at=person.first_seen_at,
        last_seen_at=person.last_seen_at,
        sightings=person.sightings,
        thumbnail_url=thumbnail_url,
    )


async def accepted(store: LifecycleStore, tenant_id: str, operation_id: uuid.UUID) -> OperationAccepted:
    operation = await store.get_operation(tenant_id, operation_id)
    return OperationAccepted(operation_id=operation_id, status="pending" if operation is None else operation.status)


def operation_out(operation: OperationView) -> OperationOut:
    done = {step.step: step for step in operation.steps}
    return OperationOut(
        operation_id=operation.operation_id,
        kind=operation.kind.value,
        status=operation.status.value,
        person_id=operation.person_id,
        steps=[
            StepOut(
                service=step.split("/", 1)[0],
                step=step.split("/", 1)[1],
                status="completed" if step in done else "pending",
                at=done[step].completed_at if step in done else None,
                changed=done[step].changed if step in done else None,
            )
            for step in operation.expected_steps
        ],
        result=operation.result,
        created_at=operation.created_at,
        updated_at=operation.updated_at,
    )


@contextmanager
def lifecycle_errors() -> Iterator[None]:
    """Domain refusals become 4xx with the reason: 404 for a person that is not there, else 422."""
    try:
        yield
    except PersonNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except PersonBusy as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except LifecycleError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from error
