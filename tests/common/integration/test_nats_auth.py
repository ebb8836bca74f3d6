"""The bus's JWT auth on a real nats-server: nobody connects anonymously, a service user does only what its
table entry says, a device publishes only its cameras and reads only its tenant's staff, and a revoked device
is shut out within 30 s."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient

from devstack.nats_auth import SYSTEM_USER, NatsTrust
from edge.publisher import connect_options, user_of_credentials
from edge.staff import watch_staff_gallery
from schemas import subjects
from schemas.staff import staff_entry
from services.common.bus import open_staff_gallery
from services.common.nats_auth import SERVICE_ACCESS, revoke_users
from services.common.startup import DependencyUnavailable
from tests.support import connect_admin


class Session:
    """A connection and the asynchronous errors the server sent it (permission violations arrive that way)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.closed = asyncio.Event()
        self.connection: NatsClient | None = None

    async def error(self, error: Exception) -> None:
        self.errors.append(str(error))

    async def on_closed(self) -> None:
        self.closed.set()

    @property
    def nc(self) -> NatsClient:
        assert self.connection is not None
        return self.connection

    async def refused(self, subject_fragment: str, timeout: float = 3) -> bool:
        """True once the server said it refused something naming `subject_fragment`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("permissions violation" in e.lower() and subject_fragment.lower() in e.lower() for e in self.errors):
                return True
            await asyncio.sleep(0.05)
        return False


@asynccontextmanager
async def session(url: str, **options: object) -> AsyncIterator[Session]:
    opened = Session()
    opened.connection = await nats.connect(
        url, error_cb=opened.error, closed_cb=opened.on_closed, allow_reconnect=False, **options
    )
    try:
        yield opened
    finally:
        await opened.nc.close()


async def test_anonymous_connections_are_refused(nats_url: str) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(nats_url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)


def test_every_service_declares_the_streams_its_table_entry_implies() -> None:
    """The permission table and the streams each service declares at start come from the same facts."""
    from services.audit import bootstrap as audit
    from services.identity import bootstrap as identity
    from services.ingest import bootstrap as ingest
    from services.matcher import bootstrap as matcher
    from services.reporting import bootstrap as reporting

    declared = {
        module.SERVICE: {spec.name for spec in module.STREAMS}
        for module in (audit, identity, ingest, matcher, reporting)
    }
    assert declared == {name: set(access.declared_streams()) for name, access in SERVICE_ACCESS.items()}


async def test_a_service_user_is_denied_what_it_does_not_need(nats_url: str, nats_users: dict[str, Path]) -> None:
    async with session(nats_url, user_credentials=str(nats_users["ingest"])) as ingest:
        await ingest.nc.publish(subjects.face_matched("x", "y"), b"{}")  # the matcher's, not ingest's
        await ingest.nc.flush()
        assert await ingest.refused("faces.matched.x.y")
        with pytest.raises(nats.errors.TimeoutError):  # the request is dropped: nobody answers it
            await ingest.nc.jetstream(timeout=1).delete_stream(subjects.FACES_STREAM.name)
        assert await ingest.refused(f"$JS.API.STREAM.DELETE.{subjects.FACES_STREAM.name}")
        await ingest.nc.publish(subjects.face_ingested("x", "y"), b"{}")  # its own publication passes
        await ingest.nc.flush()
        assert not await ingest.refused("faces.ingested", timeout=0.5)


@pytest.fixture
async def gallery(nats_connection: NatsClient) -> AsyncIterator[tuple[str, str]]:
    """Two tenants with one staff member each in the staff gallery."""
    tenant, other = f"dev-{uuid.uuid4().hex[:8]}", f"oth-{uuid.uuid4().hex[:8]}"
    bucket = await open_staff_gallery(nats_connection)
    for owner in (tenant, other):
        entry = staff_entry(owner, "jane", "model@1", [[0.1] * 128])
        await bucket.put(subjects.staff_gallery_key(owner, "jane"), entry.to_json_bytes())
    yield tenant, other


async def test_a_device_publishes_its_cameras_and_reads_its_tenants_staff_only(
    nats_url: str, mint_device: Callable[..., Path], gallery: tuple[str, str]
) -> None:
    tenant, other = gallery
    credentials = mint_device(tenant, "s1", ("door",))
    async with session(nats_url, **connect_options(credentials)) as device:
        ack = await device.nc.jetstream(timeout=5).publish(subjects.face_detected(tenant, "s1", "door"), b"{}")
        assert ack.stream == subjects.FACES_DETECTED_STREAM.name

        for forbidden in (subjects.face_detected(other, "s1", "door"), subjects.face_detected(tenant, "s1", "back")):
            await device.nc.publish(forbidden, b"{}")
            await device.nc.flush()
            assert await device.refused(forbidden)
        await device.nc.publish(subjects.face_matched(tenant, "s1"), b"{}")
        await device.nc.flush()
        assert await device.refused(subjects.face_matched(tenant, "s1"))
        await device.nc.subscribe("faces.>")
        await device.nc.flush()
        assert await device.refused("faces.>")

        own = await watch_staff_gallery(device.nc, tenant, 5)
        assert "jane" in own.gallery
        await own.stop()
        with pytest.raises(DependencyUnavailable):
            await watch_staff_gallery(device.nc, other, 2)
        assert await device.refused(f"$KV.staff_gallery.{other}.*")


async def test_a_device_cannot_widen_its_staff_watch(
    nats_url: str, mint_device: Callable[..., Path], gallery: tuple[str, str]
) -> None:
    """Neither an unnamed consumer (no filter in the API subject) nor a filter in the body other than the one
    in the subject reaches another tenant's staff."""
    tenant, other = gallery
    credentials = mint_device(tenant, "s1", ("door",))
    stream = f"KV_{subjects.STAFF_GALLERY_BUCKET}"
    own_filter, other_filter = subjects.staff_gallery_filter(tenant), subjects.staff_gallery_filter(other)
    inbox = f"{connect_options(credentials)['inbox_prefix']}.x"
    async with session(nats_url, **connect_options(credentials)) as device:
        body = {
            "stream_name": stream,
            "config": {
                "name": "sneaky",
                "filter_subject": other_filter,
                "ack_policy": "none",
                "deliver_subject": inbox,
            },
        }
        with pytest.raises(nats.errors.TimeoutError):
            await device.nc.request(f"$JS.API.CONSUMER.CREATE.{stream}", json.dumps(body).encode(), timeout=1)
        assert await device.refused(f"$JS.API.CONSUMER.CREATE.{stream}")
        reply = await device.nc.request(
            f"$JS.API.CONSUMER.CREATE.{stream}.sneaky.{own_filter}", json.dumps(body).encode(), timeout=2
        )
        assert "error" in json.loads(reply.data)  # the server checks the body's filter against the subject's


async def test_a_revoked_device_is_disconnected_and_refused_within_30_seconds(
    nats_url: str, nats_trust: NatsTrust, nats_users: dict[str, Path], mint_device: Callable[..., Path]
) -> None:
    tenant = f"rev-{uuid.uuid4().hex[:8]}"
    credentials = mint_device(tenant, "s1", ("door",))
    survivor = mint_device(tenant, "s1", ("door",))
    system = await nats.connect(nats_url, user_credentials=str(nats_users[SYSTEM_USER]))
    try:
        async with (
            session(nats_url, **connect_options(credentials)) as device,
            session(nats_url, **connect_options(survivor)) as other_device,
        ):
            started = time.monotonic()
            await revoke_users(
                system, nats_trust.account, [user_of_credentials(credentials)], nats_trust.operator_signing_seed
            )
            await asyncio.wait_for(device.closed.wait(), 30)
            assert time.monotonic() - started < 30
            assert other_device.nc.is_connected  # only the revoked user is shut out
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                nats_url, allow_reconnect=False, max_reconnect_attempts=0, **connect_options(credentials)
            )
        still = await connect_admin(nats_url)  # and the account keeps working
        await still.close()
    finally:
        await system.close()
