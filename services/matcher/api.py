"""Matcher's REST routes: duplicate suggestions over the tenant's face vectors (the vectors stay here) and the
tenant's matching settings."""

import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel

from services.common.auth import Principal, Role, require_roles
from services.matcher.domain.tenant_settings import InvertedQualityFloors, MatchPolicy, TenantMatchSettings
from services.matcher.handlers import MatcherPorts, change_tenant_settings, duplicate_suggestions, tenant_settings

router = APIRouter(prefix="/v1", tags=["matcher"])
Analyst = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.ANALYST))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


class DuplicateOut(BaseModel):
    person_id: uuid.UUID
    other_person_id: uuid.UUID
    similarity: float
    ambiguous_match: bool = False


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
    `min_similarity` alike, and the ambiguous matches (`ambiguous_match`: a face only just above the threshold
    started a provisional person) whatever their similarity, most similar first; pairs marked "not the same"
    are never suggested. Accept with a merge, reject with not-same (identity)."""
    ports: MatcherPorts = request.app.state.ports
    pairs = await duplicate_suggestions(principal.tenant_id, min_similarity, limit, ports)
    return DuplicatesOut(
        items=[
            DuplicateOut(
                person_id=p.person_id,
                other_person_id=p.other_person_id,
                similarity=p.similarity,
                ambiguous_match=p.ambiguous_match,
            )
            for p in pairs
        ]
    )


class MatchPolicyOut(BaseModel):
    match_threshold: float
    ambiguous_band: float
    identify_min_quality: float
    enrol_min_quality: float


class TenantSettingsOut(BaseModel):
    overrides: TenantMatchSettings
    """What the tenant set (absent: the matcher's default)."""
    effective: MatchPolicyOut
    """What its faces are decided with."""


def _settings_out(overrides: TenantMatchSettings, policy: MatchPolicy) -> TenantSettingsOut:
    return TenantSettingsOut(overrides=overrides, effective=MatchPolicyOut(**asdict(policy)))


@router.get("/settings", response_model_exclude_none=True)
async def get_settings(principal: Analyst, request: Request) -> TenantSettingsOut:
    """The caller's tenant's matching overrides and the thresholds its faces are decided with."""
    return _settings_out(*tenant_settings(principal.tenant_id, request.app.state.ports))


@router.put("/settings", response_model_exclude_none=True)
async def put_settings(principal: Admin, request: Request, body: TenantMatchSettings) -> TenantSettingsOut:
    """Replace the caller's tenant's overrides (a field left out or null takes the matcher's default again);
    thresholds and floors in [0, 1], the band in [0, 0.2], the enrolment floor not below the identification
    floor: 422 with the reason otherwise. Audited (`settings_changed`); faces decided from now on use them."""
    ports: MatcherPorts = request.app.state.ports
    try:
        policy = await change_tenant_settings(principal.tenant_id, body, principal.subject, ports)
    except InvertedQualityFloors as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    return _settings_out(body, policy)
