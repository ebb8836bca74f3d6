"""Admin routes for the tenant's staff gallery: the vectors edges use to leave staff uncounted.

Until identity enrols from photos, the vectors come from the edge's own models (`python -m edge
enrol-staff` computes them the same way). Every change is reported to the audit log.
"""

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from schemas import AuditEntryRecorded, subjects
from schemas.base import TOKEN_PATTERN
from schemas.faces import Embedding
from schemas.models import EMBEDDING_DIMENSIONS
from schemas.staff import MAX_STAFF_EMBEDDINGS, staff_entry
from services.common.auth import Principal, Role, require_roles
from services.common.bus import EventPublisher
from services.common.http import NulFreeText
from services.identity.adapters.staff_gallery import StaffGalleryStore
from services.identity.domain.staff_vectors import InvalidStaffVectors, check_staff_vectors

router = APIRouter(prefix="/v1/staff", tags=["staff"])
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
StaffId = Annotated[str, Path(pattern=TOKEN_PATTERN, description="The store's id of the staff member")]


def embedding_models(principal: Admin) -> Mapping[str, int]:
    """The embedding models (name to dimension) the caller's tenant may enrol staff with: the shared registry,
    for every tenant until tenants can add their own (this dependency is where such a setting would be read)."""
    return EMBEDDING_DIMENSIONS


EmbeddingModels = Annotated[Mapping[str, int], Depends(embedding_models)]


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN or infinity is no face vector

    display_name: NulFreeText | None = Field(None, max_length=200)
    embedding_model: str = Field(min_length=1, max_length=128, description="Model id, as the edges report it")
    embeddings: Annotated[list[Embedding], Field(min_length=1, max_length=MAX_STAFF_EMBEDDINGS)]


class StaffOut(BaseModel):
    staff_id: str
    embedding_model: str
    vectors: int
    revision: int


async def audit(request: Request, principal: Principal, action: str, staff_id: str, details: dict[str, object]) -> None:
    publish: EventPublisher = request.app.state.publish
    entry = AuditEntryRecorded(
        tenant_id=principal.tenant_id,
        service="identity",
        action=action,
        actor=principal.subject,
        resource=f"staff/{staff_id}",
        details=details,
    )
    await publish(subjects.audit_entry("identity", action, principal.tenant_id), entry)


@router.put("/{staff_id}")
async def put_staff(
    staff_id: StaffId, body: StaffIn, principal: Admin, models: EmbeddingModels, request: Request
) -> StaffOut:
    """Enrol or re-enrol a staff member of the caller's tenant; edges apply it within seconds.

    Vectors of an unknown model or of the wrong dimension are refused (422): an edge could never match them."""
    try:
        check_staff_vectors(body.embedding_model, body.embeddings, models)
    except InvalidStaffVectors as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    store: StaffGalleryStore = request.app.state.staff_gallery
    entry = staff_entry(principal.tenant_id, staff_id, body.embedding_model, body.embeddings, body.display_name)
    revision = await store.put(entry)
    details: dict[str, object] = {"embedding_model": entry.embedding_model, "vectors": len(entry.embeddings)}
    await audit(request, principal, "staff_enrolled", staff_id, details)
    return StaffOut(
        staff_id=staff_id, embedding_model=entry.embedding_model, vectors=len(entry.embeddings), revision=revision
    )


@router.delete("/{staff_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_staff(staff_id: StaffId, principal: Admin, request: Request) -> Response:
    """Remove a staff member: edges count their face as a visitor's again."""
    store: StaffGalleryStore = request.app.state.staff_gallery
    if not await store.delete(principal.tenant_id, staff_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no staff member {staff_id} in tenant {principal.tenant_id}")
    await audit(request, principal, "staff_removed", staff_id, {})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
