"""NATS decentralized JWT auth: who may connect to the bus and which subjects each user may touch.

The trust chain is NATS' own (operator → accounts → users, each an nkey signing the next one's JWT; see
docs/architecture.md, "The bus's accounts"). Everything Revisit runs lives in one application account;
tenants are kept apart by user permissions on subjects, which carry the tenant. This module builds those
JWTs (claims as nats-server reads them, signed with nkeys), writes the standard `.creds` file nats-py
reads, derives each service's permissions from the one table below, mints device users and revokes them.
"""

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nkeys
from nats.aio.client import Client as NatsClient

from schemas import subjects
from services.common.retention import LEASE_BUCKET

NO_LIMIT = -1
JWT_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
JS_API = "$JS.API"


class NatsAuthError(RuntimeError):
    """A JWT could not be read, or the server refused an account update; the message says which."""


# --- keys and JWTs -------------------------------------------------------------------------------------------


def new_seed(prefix: int) -> str:
    """A fresh nkey seed of a role (`nkeys.PREFIX_BYTE_OPERATOR`, `_ACCOUNT` or `_USER`)."""
    return str(nkeys.encode_seed(os.urandom(32), prefix).decode())


def public_key(seed: str) -> str:
    """The public key (`O...`, `A...`, `U...`) of a seed."""
    return str(nkeys.from_seed(seed.encode()).public_key.decode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_jwt(claims: Mapping[str, Any], issuer_seed: str) -> str:
    """Sign `claims` as a NATS JWT: `iss` is the seed's public key, `jti` a hash of the claims.

    nats-server checks the ed25519 signature against `iss` and that `iss` may issue this kind of JWT
    (the operator or one of its signing keys for an account, the account or one of its signing keys for a user).
    """
    issuer = nkeys.from_seed(issuer_seed.encode())
    body = {key: value for key, value in claims.items() if key != "jti"} | {"iss": issuer.public_key.decode()}
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()).decode()
    signing_input = f"{_b64(json.dumps(JWT_HEADER).encode())}.{_b64(json.dumps(body).encode())}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


def decode_jwt(token: str) -> dict[str, Any]:
    """The claims of a NATS JWT, unverified: for JWTs this code issued or the server handed back."""
    try:
        payload = token.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as error:
        raise NatsAuthError(f"not a NATS JWT: {error}") from error
    return claims


def _issued_now(subject: str, name: str, nats: Mapping[str, Any], issued_at: int | None = None) -> dict[str, Any]:
    return {"iat": issued_at if issued_at is not None else int(time.time()), "name": name, "sub": subject, "nats": nats}


def operator_jwt(operator_seed: str, name: str, signing_keys: Sequence[str], system_account: str) -> str:
    """The self-signed operator JWT every server trusts (`operator` in its config)."""
    nats = {"type": "operator", "version": 2, "signing_keys": list(signing_keys), "system_account": system_account}
    return encode_jwt(_issued_now(public_key(operator_seed), name, nats), operator_seed)


def account_claims(
    account: str, name: str, signing_keys: Sequence[str], jetstream: bool, revocations: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Claims of an account without limits, JetStream enabled (unlimited) when asked.

    nats-server reads a limit of 0 as "none allowed", so every limit is spelled out as -1 (no limit).
    """
    limits: dict[str, Any] = {
        "subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT, "imports": NO_LIMIT, "exports": NO_LIMIT,
        "wildcards": True, "conn": NO_LIMIT, "leaf": NO_LIMIT,
    }  # fmt: skip
    if jetstream:
        limits |= {"mem_storage": NO_LIMIT, "disk_storage": NO_LIMIT, "streams": NO_LIMIT, "consumer": NO_LIMIT}
    nats: dict[str, Any] = {
        "type": "account",
        "version": 2,
        "limits": limits,
        "signing_keys": list(signing_keys),
        "default_permissions": {"pub": {}, "sub": {}},
    }
    if revocations:
        nats["revocations"] = dict(revocations)
    return _issued_now(account, name, nats)


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish to and subscribe to; None means everything (the account's defaults)."""

    publish: tuple[str, ...] | None
    subscribe: tuple[str, ...] | None

    def claims(self) -> dict[str, Any]:
        allowed: dict[str, Any] = {}
        if self.publish is not None:
            allowed["pub"] = {"allow": sorted(set(self.publish))}
        if self.subscribe is not None:
            allowed["sub"] = {"allow": sorted(set(self.subscribe))}
        return allowed


FULL_ACCESS = Permissions(None, None)


def user_jwt(
    user: str,
    name: str,
    account: str,
    account_signing_seed: str,
    permissions: Permissions,
    issued_at: int | None = None,
) -> str:
    """A user of `account`, signed by one of its signing keys (so the account key itself can stay offline)."""
    nats = {
        "type": "user", "version": 2, "issuer_account": account,
        "subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT, **permissions.claims(),
    }  # fmt: skip
    return encode_jwt(_issued_now(user, name, nats, issued_at), account_signing_seed)


def credentials_text(jwt: str, seed: str) -> str:
    """The standard `.creds` file (user JWT and nkey seed) that nats-py's `user_credentials=` and the nats CLI read."""
    return (
        f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


def jwt_of_credentials(text: str) -> str:
    """The user JWT inside a `.creds` file's text."""
    lines = [line.strip() for line in text.splitlines()]
    try:
        return lines[lines.index("-----BEGIN NATS USER JWT-----") + 1]
    except (ValueError, IndexError) as error:
        raise NatsAuthError("not a NATS .creds file: no user JWT block") from error


@dataclass(frozen=True)
class UserCredentials:
    """A user as issued: its public key (what a revocation names) and the `.creds` text it connects with."""

    public_key: str
    text: str


def issue_user(
    name: str, account: str, account_signing_seed: str, permissions: Permissions, issued_at: int | None = None
) -> UserCredentials:
    """A new user key and its `.creds`; the seed exists only in the returned text."""
    seed = new_seed(nkeys.PREFIX_BYTE_USER)
    user = public_key(seed)
    jwt = user_jwt(user, name, account, account_signing_seed, permissions, issued_at)
    return UserCredentials(user, credentials_text(jwt, seed))


# --- what each service may do on the bus --------------------------------------------------------------------


@dataclass(frozen=True)
class BusAccess:
    """One service's use of the bus; its NATS permissions are derived from this and nothing else.

    `consumes` are the filter subjects of its durable consumers, `publishes` the subjects it publishes,
    `buckets` the KV buckets it reads or writes. The streams it declares at start are those that capture
    the subjects it consumes or publishes.
    """

    publishes: tuple[str, ...]
    consumes: tuple[str, ...]
    buckets: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    """KV buckets it only reads (and may create empty if it starts first), never writes."""
    other: tuple[str, ...] = ()
    """Subjects allowed verbatim: a stream of the service's own outside `subjects.ALL_STREAMS`."""

    def declared_streams(self) -> tuple[str, ...]:
        found = {subjects.stream_for_subject(subject).name for subject in (*self.publishes, *self.consumes)}
        return tuple(spec.name for spec in subjects.ALL_STREAMS if spec.name in found)


RETENTION_LEASES = LEASE_BUCKET
"""The retention jobs' one-runner-at-a-time leases."""
AUDIT_CHECKPOINTS_STREAM, AUDIT_CHECKPOINTS_SUBJECTS = "AUDIT_CHECKPOINTS", "audit_checkpoints"
"""The audit service's signed checkpoints (services/audit/adapters/checkpoints.py)."""


def _own(service: str) -> tuple[str, ...]:
    """What every service publishes about itself: its audit entries and its dead letters."""
    return (f"audit.{service}.>", subjects.dead_letter(service, ">"))


SERVICE_ACCESS: dict[str, BusAccess] = {
    "ingest": BusAccess(
        publishes=(
            subjects.FACES_DETECTED_ALL,  # POST /v1/faces joins the same path as a published detection
            subjects.FACES_INGESTED_ALL,
            subjects.FACES_REJECTED_ALL,
            subjects.operation_step("ingest", ">"),
            *_own("ingest"),
        ),
        consumes=(subjects.FACES_DETECTED_ALL, subjects.identity_event("crops_erasure_requested", "*")),
        buckets=(RETENTION_LEASES,),
        reads=(subjects.REGISTRY_BUCKET,),
    ),
    "matcher": BusAccess(
        publishes=(
            subjects.FACES_MATCHED_ALL,
            subjects.FACES_UNIDENTIFIED_ALL,
            subjects.operation_step("matcher", ">"),
            *_own("matcher"),
        ),
        consumes=(
            subjects.FACES_INGESTED_ALL,
            *(
                subjects.identity_event(fact, "*")
                for fact in (
                    "persons_merged",
                    "person_split",
                    "person_erased",
                    "persons_marked_different",
                    "person_kind_changed",
                )
            ),
        ),
        buckets=(
            subjects.STAFF_GALLERY_BUCKET,
            "matcher_decisions",
            "matcher_not_same",
            "matcher_leases",
            "matcher_vector_log",
            "matcher_operations",
            "matcher_ambiguous_pairs",
            "matcher_tenant_settings",
            RETENTION_LEASES,
        ),
        reads=(subjects.REGISTRY_BUCKET,),
    ),
    "identity": BusAccess(
        publishes=(subjects.IDENTITY_ALL, *_own("identity")),
        consumes=(subjects.FACES_MATCHED_ALL, subjects.OPERATIONS_ALL),
        buckets=(subjects.STAFF_GALLERY_BUCKET, subjects.REGISTRY_BUCKET, RETENTION_LEASES),
    ),
    "reporting": BusAccess(
        publishes=(subjects.VISITS_ALL, subjects.operation_step("reporting", ">"), *_own("reporting")),
        consumes=(
            subjects.FACES_MATCHED_ALL,
            subjects.FACES_UNIDENTIFIED_ALL,
            *(
                subjects.identity_event(fact, "*")
                for fact in ("persons_merged", "person_split", "person_erased", "person_kind_changed")
            ),
        ),
        buckets=(RETENTION_LEASES,),
        reads=(subjects.REGISTRY_BUCKET,),
    ),
    "audit": BusAccess(
        publishes=(subjects.dead_letter("audit", ">"),),
        consumes=(subjects.AUDIT_ALL, subjects.identity_event("person_created", "*")),
        other=(  # its checkpoints: create, append, read; never update or delete the stream
            f"{AUDIT_CHECKPOINTS_SUBJECTS}.>",
            f"{JS_API}.STREAM.CREATE.{AUDIT_CHECKPOINTS_STREAM}",
            f"{JS_API}.STREAM.INFO.{AUDIT_CHECKPOINTS_STREAM}",
            f"{JS_API}.STREAM.MSG.GET.{AUDIT_CHECKPOINTS_STREAM}",
            f"{JS_API}.DIRECT.GET.{AUDIT_CHECKPOINTS_STREAM}",
        ),
    ),
}


def consume_permissions(stream: str, filter_subject: str) -> tuple[str, ...]:
    """A durable pull consumer of `filter_subject` on `stream`: create it (the filter is part of the API
    subject, so the server refuses any other filter), look it up, fetch, and ack."""
    return (
        f"{JS_API}.CONSUMER.CREATE.{stream}.*.{filter_subject}",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
    )


def bucket_permissions(bucket: str) -> tuple[str, ...]:
    """Open or create a KV bucket, read, write and watch it (nats-py's watch creates an unnamed ordered consumer)."""
    stream = f"KV_{bucket}"
    return (
        f"$KV.{bucket}.>",
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.CREATE.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",
    )


def service_permissions(service: str) -> Permissions:
    """Least privilege for one service: its publications, its consumers, its streams and its buckets.

    Replies come to `_INBOX.>`: FastStream's pull consumers take their inbox prefix per subscriber, so a
    private prefix per service is left for later; services are trusted, devices (below) are not."""
    access = SERVICE_ACCESS[service]
    publish: list[str] = list(access.publishes)
    for stream in access.declared_streams():
        publish += [f"{JS_API}.STREAM.{verb}.{stream}" for verb in ("CREATE", "UPDATE", "INFO")]
    for filter_subject in access.consumes:
        publish += consume_permissions(subjects.stream_for_subject(filter_subject).name, filter_subject)
    for bucket in access.buckets:
        publish += bucket_permissions(bucket)
    for bucket in access.reads:
        publish += [subject for subject in bucket_permissions(bucket) if not subject.startswith(f"$KV.{bucket}.")]
    publish += access.other
    return Permissions(tuple(publish), ("_INBOX.>",))


# --- devices --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceScope:
    """Where a device (an edge box) may publish: its tenant, site and cameras."""

    tenant_id: str
    site_id: str
    camera_ids: tuple[str, ...] = field(default=())


def device_permissions(scope: DeviceScope, user: str) -> Permissions:
    """Publish its cameras' detections; watch its tenant's staff gallery keys; nothing else.

    The staff watch is an ordered push consumer: the edge names it, so its create request carries the
    filter in the API subject and the server refuses any other tenant's keys (and a create without a
    filter). Flow-control replies go to `$JS.FC`; the detections' PubAcks and the watch's deliveries come
    to the device's private inbox, so no device can read what is delivered to another.
    """
    gallery_stream = f"KV_{subjects.STAFF_GALLERY_BUCKET}"
    watched = subjects.staff_gallery_filter(scope.tenant_id)
    publish = [subjects.face_detected(scope.tenant_id, scope.site_id, camera) for camera in scope.camera_ids]
    publish += [
        f"{JS_API}.CONSUMER.CREATE.{gallery_stream}.*.{watched}",
        f"{JS_API}.CONSUMER.INFO.{gallery_stream}.*",
        f"$JS.FC.{gallery_stream}.>",
    ]
    return Permissions(tuple(publish), (f"{subjects.private_inbox_prefix(user)}.>",))


def mint_device_credentials(
    scope: DeviceScope, device_name: str, account: str, account_signing_seed: str
) -> UserCredentials:
    """A device user of the application account for `scope`: the `.creds` text to hand to the edge box and the
    public key to revoke it by. Identity's device registry calls this with the account signing seed."""
    if not scope.camera_ids:
        raise ValueError("a device needs at least one camera")
    seed = new_seed(nkeys.PREFIX_BYTE_USER)
    user = public_key(seed)
    jwt = user_jwt(user, device_name, account, account_signing_seed, device_permissions(scope, user))
    return UserCredentials(user, credentials_text(jwt, seed))


# --- revocation ------------------------------------------------------------------------------------------------


def with_revocations(account_jwt: str, users: Iterable[str], operator_signing_seed: str, at: int) -> str:
    """The account JWT again with `users` revoked as of `at` (every JWT of theirs issued until then), re-signed.

    Its `iat` moves past the stored one, because the resolver keeps an update only if it is newer."""
    claims = decode_jwt(account_jwt)
    nats = dict(claims["nats"])
    nats["revocations"] = dict(nats.get("revocations") or {}) | {user: at for user in users}
    issued = max(int(time.time()), int(claims.get("iat", 0)) + 1)
    return encode_jwt({**claims, "iat": issued, "nats": nats}, operator_signing_seed)


async def lookup_account_jwt(system: NatsClient, account: str, wait_seconds: float = 5) -> str:
    """The account JWT the server holds now (with every revocation so far), asked through the system account."""
    reply = await system.request(f"$SYS.REQ.ACCOUNT.{account}.CLAIMS.LOOKUP", b"", timeout=wait_seconds)
    if not reply.data or reply.data.startswith(b"{"):
        raise NatsAuthError(f"account {account} lookup failed: {reply.data[:300]!r}")
    return reply.data.decode()


async def push_account_jwt(system: NatsClient, account_jwt: str, wait_seconds: float = 5) -> None:
    """Store an account JWT in the server's resolver (and every server of a cluster), through the system account.

    The server applies it at once: new connections of revoked users are refused, open ones closed."""
    account = decode_jwt(account_jwt)["sub"]
    reply = await system.request(
        f"$SYS.REQ.ACCOUNT.{account}.CLAIMS.UPDATE", account_jwt.encode(), timeout=wait_seconds
    )
    answer: dict[str, Any] = json.loads(reply.data or b"{}")
    if "error" in answer:
        raise NatsAuthError(f"the server refused the update of account {account}: {answer['error']}")


async def revoke_users(
    system: NatsClient, account: str, users: Iterable[str], operator_signing_seed: str, at: int | None = None
) -> str:
    """Revoke users (devices) of `account` now: read the account JWT from the server, add them to its revocation
    list, re-sign it with the operator signing key and push it back. Returns the JWT pushed."""
    current = await lookup_account_jwt(system, account)
    updated = with_revocations(current, users, operator_signing_seed, at if at is not None else int(time.time()))
    await push_account_jwt(system, updated)
    return updated
