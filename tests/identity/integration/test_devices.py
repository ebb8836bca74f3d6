"""Edge devices through identity's API on a real nats-server with JWT auth: `POST /v1/devices` hands out
credentials that publish only the device's cameras, and `DELETE` shuts the device out within 30 s."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest

from edge.publisher import connect_options
from schemas import subjects
from services.identity.bootstrap import Identity
from tests.common.integration.test_nats_auth import session
from tests.support import collect_messages, new_tenant


async def test_a_device_publishes_only_its_cameras_and_is_shut_out_when_deleted(
    identity: Identity, make_token: Callable[..., str], tmp_path: Path, nats_connection
) -> None:
    tenant = new_tenant()
    admin = {"authorization": f"Bearer {make_token(tenant, ['admin'])}"}
    transport = httpx.ASGITransport(app=identity.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://identity", headers=admin) as api:
        await api.put("/v1/sites/s1", json={"name": "Shop", "time_zone": "UTC"})
        await api.put("/v1/cameras/door", json={"site_id": "s1"})
        unregistered = await api.post("/v1/devices", json={"device_id": "box", "site_id": "s1", "camera_ids": ["back"]})
        assert unregistered.status_code == 409 and "back" in unregistered.text
        created = await api.post("/v1/devices", json={"device_id": "box", "site_id": "s1", "camera_ids": ["door"]})
        assert created.status_code == 201, created.text
        again = await api.post("/v1/devices", json={"device_id": "box", "site_id": "s1", "camera_ids": ["door"]})
        assert again.status_code == 409
        body = created.json()
        assert body["nats_url"] == identity.settings.nats_public_url
        assert "-----BEGIN NATS USER JWT-----" in body["nats_credentials"]
        credentials = tmp_path / "box.creds"
        credentials.write_text(body["nats_credentials"])

        async with session(body["nats_url"], **connect_options(credentials)) as device:
            ack = await device.nc.jetstream(timeout=5).publish(subjects.face_detected(tenant, "s1", "door"), b"{}")
            assert ack.stream == subjects.FACES_DETECTED_STREAM.name
            for forbidden in (subjects.face_detected(new_tenant(), "s1", "door"), subjects.face_matched(tenant, "s1")):
                await device.nc.publish(forbidden, b"{}")
                await device.nc.flush()
                assert await device.refused(forbidden)

            started = time.monotonic()
            assert (await api.delete("/v1/devices/box")).status_code == 204
            await asyncio.wait_for(device.closed.wait(), 30)
            assert time.monotonic() - started < 30
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                body["nats_url"], allow_reconnect=False, max_reconnect_attempts=0, **connect_options(credentials)
            )
        [listed] = (await api.get("/v1/devices")).json()["items"]
        assert listed["device_id"] == "box" and listed["revoked_at"] is not None
    audited = await collect_messages(nats_connection, f"audit.identity.*.{tenant}", 10, timeout=3)
    actions = [m.subject.split(".")[2] for m in audited]
    assert actions.count("device_created") == 1 and actions.count("device_revoked") == 1
    assert not any(b"NATS USER" in m.data for m in audited)  # the audit names the device, never its secret
