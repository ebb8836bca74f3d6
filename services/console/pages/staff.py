"""`/staff`: enrol a staff member from photos (embedded here with the edges' models, sent to identity's staff
gallery), remove one, and the customers identity suggests are staff (seen most working days)."""

from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from schemas.staff import MAX_STAFF_EMBEDDINGS
from services.console.adapters.apis import ApiRefused
from services.console.adapters.faces import FaceEmbedder, UnusablePhotos
from services.console.rendering import page, redirect
from services.console.session import SignedIn

router = APIRouter(include_in_schema=False)
MAX_PHOTO_BYTES = 10 * 1024 * 1024


@router.get("/staff")
async def staff(request: Request, user: SignedIn) -> HTMLResponse:
    suggestions = (await user.apis.identity.get("/v1/persons/staff-suggestions"))["items"]
    return page(request, "staff.html", user, "Staff", suggestions=suggestions, max_photos=MAX_STAFF_EMBEDDINGS)


@router.post("/staff")
async def enrol(
    request: Request,
    user: SignedIn,
    staff_id: Annotated[str, Form(max_length=63)],
    photos: Annotated[list[UploadFile], Form()],
    display_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The photos' largest faces become the staff member's vectors; the photos themselves are not kept."""
    embedder: FaceEmbedder = request.app.state.face_embedder
    uploads = [(photo.filename or "photo", await photo.read(MAX_PHOTO_BYTES + 1)) for photo in photos]
    if any(len(content) > MAX_PHOTO_BYTES for _, content in uploads):
        return redirect("/staff", error=f"a photo is over {MAX_PHOTO_BYTES // (1024 * 1024)} MiB")
    try:
        vectors = await embedder.vectors([(name, content) for name, content in uploads if content])
        body = {"display_name": display_name or None, "embedding_model": embedder.model_id, "embeddings": vectors}
        entry = await user.apis.identity.send("PUT", f"/v1/staff/{staff_id.strip()}", body)
    except (UnusablePhotos, ApiRefused) as problem:
        return redirect("/staff", error=getattr(problem, "detail", str(problem)))
    return redirect("/staff", notice=f"enrolled {entry['staff_id']}: {entry['vectors']} face vectors")


@router.post("/staff/remove")
async def remove(user: SignedIn, staff_id: Annotated[str, Form(max_length=63)]) -> Response:
    try:
        await user.apis.identity.send("DELETE", f"/v1/staff/{staff_id.strip()}")
    except ApiRefused as refusal:
        return redirect("/staff", error=refusal.detail)
    return redirect("/staff", notice=f"removed {staff_id.strip()} from the staff gallery")
