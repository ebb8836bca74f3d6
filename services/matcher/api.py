"""Matcher's REST routes: duplicate suggestions over the tenant's face vectors (the vectors stay here)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.common.auth import Principal, Role, require_roles
from services.matcher.handlers import MatcherPorts, duplicate_suggestions

router = APIRouter(prefix="/v1", tags=["matcher"])
Analyst = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.ANALYST))]


class DuplicateOut(BaseModel):
    person_id: uuid.UUID
    other_person_id: uuid.UUID
    similarity: float


class DuplicatesOut(BaseModel):
    items: list[DuplicateOut]


@router.get("/persons/duplicates")
async def list_duplicates(
    principal: Analyst,
    request: Request,
    min_similarity: Annotated[float, Query(ge=0, le=1)] = 0.5,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DuplicatesOut:
    """Pairs of different customer persons of the caller's tenant whose closest face vectors are at least
    `min_similarity` alike, most similar first; pairs marked "not the same" are never suggested."""
    ports: MatcherPorts = request.app.state.ports
    pairs = await duplicate_suggestions(principal.tenant_id, min_similarity, limit, ports)
    return DuplicatesOut(
        items=[
            DuplicateOut(person_id=p.person_id, other_person_id=p.other_person_id, similarity=p.similarity)
            for p in pairs
        ]
    )
