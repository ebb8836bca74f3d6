"""`/sites`, `/cameras`, `/devices`: the tenant's registry in identity. Admins add and remove sites and cameras,
create a device (its NATS credentials are shown once, to download) and revoke one."""

import base64
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console.adapters.apis import ApiRefused
from services.console.rendering import page, redirect
from services.console.session import SignedIn

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=200)]


@router.get("/sites")
async def sites(request: Request, user: SignedIn) -> HTMLResponse:
    listed = (await user.apis.identity.get("/v1/sites"))["items"]
    return page(request, "sites.html", user, "Sites", sites=listed)


@router.post("/sites")
async def put_site(user: SignedIn, site_id: Text, name: Text, time_zone: Text = "UTC") -> Response:
    try:
        await user.apis.identity.send("PUT", f"/v1/sites/{site_id.strip()}", {"name": name, "time_zone": time_zone})
    except ApiRefused as refusal:
        return redirect("/sites", error=refusal.detail)
    return redirect("/sites", notice=f"site {site_id.strip()} saved")


@router.post("/sites/{site_id}/delete")
async def delete_site(user: SignedIn, site_id: str) -> Response:
    try:
        await user.apis.identity.send("DELETE", f"/v1/sites/{site_id}")
    except ApiRefused as refusal:
        return redirect("/sites", error=refusal.detail)
    return redirect("/sites", notice=f"site {site_id} removed")


@router.get("/cameras")
async def cameras(request: Request, user: SignedIn) -> HTMLResponse:
    listed = (await user.apis.identity.get("/v1/cameras"))["items"]
    site_list = (await user.apis.identity.get("/v1/sites"))["items"]
    return page(request, "cameras.html", user, "Cameras", cameras=listed, sites=site_list)


@router.post("/cameras")
async def put_camera(user: SignedIn, camera_id: Text, site_id: Text, name: Text = "") -> Response:
    body = {"site_id": site_id, "name": name or None}
    try:
        await user.apis.identity.send("PUT", f"/v1/cameras/{camera_id.strip()}", body)
    except ApiRefused as refusal:
        return redirect("/cameras", error=refusal.detail)
    return redirect("/cameras", notice=f"camera {camera_id.strip()} saved")


@router.post("/cameras/{camera_id}/delete")
async def delete_camera(user: SignedIn, camera_id: str) -> Response:
    try:
        await user.apis.identity.send("DELETE", f"/v1/cameras/{camera_id}")
    except ApiRefused as refusal:
        return redirect("/cameras", error=refusal.detail)
    return redirect("/cameras", notice=f"camera {camera_id} removed")


@router.get("/devices")
async def devices(request: Request, user: SignedIn) -> HTMLResponse:
    listed = (await user.apis.identity.get("/v1/devices"))["items"]
    camera_list = (await user.apis.identity.get("/v1/cameras"))["items"]
    return page(request, "devices.html", user, "Devices", devices=listed, cameras=camera_list)


@router.post("/devices")
async def create_device(
    request: Request,
    user: SignedIn,
    device_id: Text,
    camera_ids: Annotated[list[str], Form()] = [],  # noqa: B006
) -> Response:
    """The device's credentials exist only in this answer: the page shows them once, with a download link."""
    camera_list = (await user.apis.identity.get("/v1/cameras"))["items"]
    sites = {c["site_id"] for c in camera_list if c["camera_id"] in camera_ids}
    if len(sites) != 1:
        return redirect("/devices", error="choose one or more cameras of one site")
    body = {"device_id": device_id.strip(), "site_id": sites.pop(), "camera_ids": camera_ids}
    try:
        created = await user.apis.identity.send("POST", "/v1/devices", body)
    except ApiRefused as refusal:
        return redirect("/devices", error=refusal.detail)
    download = base64.b64encode(created["nats_credentials"].encode()).decode()
    title = f"Device {created['device_id']}"
    return page(request, "device_created.html", user, title, device=created, download=download)


@router.post("/devices/{device_id}/revoke")
async def revoke_device(user: SignedIn, device_id: str) -> Response:
    try:
        await user.apis.identity.send("DELETE", f"/v1/devices/{device_id}")
    except ApiRefused as refusal:
        return redirect("/devices", error=refusal.detail)
    return redirect("/devices", notice=f"device {device_id} revoked: its connections are closed")
