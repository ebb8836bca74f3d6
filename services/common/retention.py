"""What every service's `retention` job shares: the tenants' policies read once from the registry bucket, a lease
so that one runner of a service works at a time, the deleted-items metric and log line, and the audit entry of
each run. What to delete is each owning service's own (its `handlers.py`); this module only runs it per tenant.

The job is short-lived (a CronJob, or `make dev`'s scheduler), so the Prometheus counter lives only as long as the
process: the counts that last are in the `retention_run` audit entry of each tenant and the `retention_run` log
line. No Pushgateway is assumed.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import nats.errors
import nats.js.api
from nats.aio.client import Client as NatsClient
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from schemas import AuditEntryRecorded, subjects
from schemas.registry import RetentionPolicyEntry
from services.common.bus import EventPublisher
from services.common.kv_mirror import current_keys
from services.common.logging import get_logger
from services.common.metrics import RETENTION_DELETED
from services.common.settings import RetentionSettings

LEASE_BUCKET = "retention_leases"
LEASE_TTL_SECONDS = 120.0
"""A runner that dies holding the lease blocks the next one for at most this long; a live one renews it."""
AUDIT_ACTION = "retention_run"
log = get_logger(__name__)

Counts = dict[str, int]
DeleteExpired = Callable[[RetentionPolicyEntry, datetime], Awaitable[Counts]]
"""A service's deletion for one tenant: given its policy and the job's `now`, delete what expired, return counts."""


@dataclass(frozen=True)
class RetentionRun:
    """What one run did: whether it held the lease (False: another runner did the work) and its counts per tenant."""

    ran: bool
    deleted: dict[str, Counts] = field(default_factory=dict)


async def read_policies(connection: NatsClient, defaults: RetentionSettings) -> dict[str, RetentionPolicyEntry]:
    """Every tenant of the registry bucket with its policy: its `<tenant>.retention` entry, else the defaults.

    A tenant is any that has a key in the registry: ingest refuses events of tenants without a registered model,
    so every tenant with data has one. A malformed policy entry skips its tenant (logged): deleting by the
    defaults could remove what the tenant chose to keep."""
    try:
        bucket = await connection.jetstream().key_value(subjects.REGISTRY_BUCKET)
    except BucketNotFoundError:
        return {}
    keys = await current_keys(bucket)
    tenants = sorted({subjects.tenant_of_registry_key(key) for key in keys})
    policies = {tenant: defaults.default_retention(tenant) for tenant in tenants}
    for tenant in tenants:
        key = subjects.registry_retention_key(tenant)
        if key not in keys:
            continue
        entry = await bucket.get(key)
        try:
            policies[tenant] = RetentionPolicyEntry.model_validate_json(entry.value or b"")
        except ValidationError as error:
            log.error("retention_policy_invalid", tenant_id=tenant, error=str(error))
            del policies[tenant]
    return policies


class RunLease:
    """One runner per service: a key `<service>` in the KV bucket `retention_leases`, taken with `create` (so only
    one holder) and renewed while the job runs. The deletions are idempotent, so a runner that loses its lease
    (renewal failed) does no harm beyond repeating work; the lease keeps two runs from splitting one's counts."""

    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket
        self._holder = uuid.uuid4().hex.encode()

    @classmethod
    async def open(cls, connection: NatsClient) -> "RunLease":
        js = connection.jetstream()
        try:
            return cls(await js.key_value(LEASE_BUCKET))
        except BucketNotFoundError:
            config = nats.js.api.KeyValueConfig(
                bucket=LEASE_BUCKET, history=1, ttl=LEASE_TTL_SECONDS, storage=nats.js.api.StorageType.FILE
            )
            return cls(await js.create_key_value(config=config))

    @asynccontextmanager
    async def hold(self, service: str) -> AsyncIterator[bool]:
        """Yield True while holding the service's lease, or False at once if another runner holds it."""
        try:
            revision = await self._bucket.create(service, self._holder)
        except KeyWrongLastSequenceError:
            yield False
            return
        renewal = asyncio.create_task(self._renew(service, revision))
        try:
            yield True
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                revision = await renewal
            with contextlib.suppress(KeyWrongLastSequenceError, nats.errors.Error):  # expired: nothing to free
                await self._bucket.delete(service, last=revision)  # never another runner's lease

    async def _renew(self, service: str, revision: int) -> int:
        while True:
            await asyncio.sleep(LEASE_TTL_SECONDS / 4)
            try:
                revision = await self._bucket.update(service, self._holder, last=revision)
            except (KeyWrongLastSequenceError, nats.errors.Error) as error:
                log.error("retention_lease_lost", service=service, error=repr(error))
                return revision


async def run_retention(
    service: str,
    connection: NatsClient,
    publish: EventPublisher,
    defaults: RetentionSettings,
    now: datetime,
    delete_expired: DeleteExpired,
) -> RetentionRun:
    """Once, under the service's lease: for each tenant, delete what its policy lets go as of `now`, count it,
    and audit it (`retention_run`, counts and the policy, never content), including runs that deleted nothing."""
    lease = await RunLease.open(connection)
    async with lease.hold(service) as held:
        if not held:
            log.info("retention_skipped", service=service, reason="another runner holds the lease")
            return RetentionRun(ran=False)
        run_id = uuid.uuid4()
        deleted: dict[str, Counts] = {}
        for tenant_id, policy in (await read_policies(connection, defaults)).items():
            counts = await delete_expired(policy, now)
            deleted[tenant_id] = counts
            for kind, count in counts.items():
                RETENTION_DELETED.labels(service, kind).inc(count)
            entry = audit_entry(service, policy, now, run_id, counts)
            await publish(subjects.audit_entry(service, AUDIT_ACTION, tenant_id), entry)
            log.info("retention_tenant_done", service=service, tenant_id=tenant_id, deleted=counts)
        log.info(AUDIT_ACTION, service=service, run_id=str(run_id), as_of=now.isoformat(), deleted=totals(deleted))
        return RetentionRun(ran=True, deleted=deleted)


def totals(deleted: dict[str, Counts]) -> Counts:
    """Counts per kind over every tenant."""
    summed: Counts = {}
    for counts in deleted.values():
        for kind, count in counts.items():
            summed[kind] = summed.get(kind, 0) + count
    return summed


def audit_entry(
    service: str, policy: RetentionPolicyEntry, now: datetime, run_id: uuid.UUID, counts: Counts
) -> AuditEntryRecorded:
    return AuditEntryRecorded(
        tenant_id=policy.tenant_id,
        service=service,
        action=AUDIT_ACTION,
        actor=f"{service}-retention",
        resource=f"retention/{service}",
        details={
            "run_id": str(run_id),
            "as_of": now.isoformat(),
            "deleted": counts,
            "policy": policy.model_dump(include={"crops_days", "vectors_unseen_days", "sightings_days", "visits_days"}),
        },
    )
