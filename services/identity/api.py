"""Identity's REST routes: the person directory of the caller's tenant."""

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from schemas import PersonKind
from services.common.auth import Principal, Role, require_roles
from services.identity.adapters.postgres import PersonDirectory

router = APIRouter(prefix="/v1", tags=["identity"])
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.ANALYST))]


class PersonOut(BaseModel):
    person_id: uuid.UUID
    kind: PersonKind
    first_site_id: str
    first_seen_at: datetime
    last_seen_at: datetime


@router.get("/persons")
async def list_persons(
    principal: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[PersonOut]:
    """Persons of the caller's tenant, most recently seen first."""
    directory: PersonDirectory = request.app.state.directory
    persons = await directory.list_persons(principal.tenant_id, limit)
    return [
        PersonOut(
            person_id=p.person_id,
            kind=p.kind,
            first_site_id=p.first_site_id,
            first_seen_at=p.first_seen_at,
            last_seen_at=p.last_seen_at,
        )
        for p in persons
    ]
