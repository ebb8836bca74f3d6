"""NATS subjects and JetStream streams, declared once.

Subjects carry tenant and site so that consumers, permissions and stream limits can filter on them.
"""

import functools
from dataclasses import dataclass

FACES_DETECTED_ALL = "faces.detected.>"
FACES_INGESTED_ALL = "faces.ingested.>"
FACES_MATCHED_ALL = "faces.matched.>"
FACES_UNIDENTIFIED_ALL = "faces.unidentified.>"
FACES_REJECTED_ALL = "faces.rejected.>"
IDENTITY_ALL = "identity.>"
VISITS_ALL = "visits.>"
AUDIT_ALL = "audit.>"
OPERATIONS_ALL = "operations.>"
DEADLETTER_ALL = "deadletter.>"


def face_detected(tenant: str, site: str, camera: str) -> str:
    return f"faces.detected.{tenant}.{site}.{camera}"


def face_ingested(tenant: str, site: str) -> str:
    return f"faces.ingested.{tenant}.{site}"


def face_rejected(tenant: str) -> str:
    return f"faces.rejected.{tenant}"


def face_matched(tenant: str, site: str) -> str:
    return f"faces.matched.{tenant}.{site}"


def face_unidentified(tenant: str, site: str) -> str:
    return f"faces.unidentified.{tenant}.{site}"


def identity_event(kind: str, tenant: str) -> str:
    return f"identity.{kind}.{tenant}"


def operation_step(service: str, tenant: str) -> str:
    """Where a service announces that it completed its step of a lifecycle operation."""
    return f"operations.{service}.{tenant}"


def visit_record(tenant: str, site: str) -> str:
    return f"visits.{tenant}.{site}"


def audit_entry(service: str, action: str, tenant: str) -> str:
    return f"audit.{service}.{action}.{tenant}"


def dead_letter(service: str, subject: str) -> str:
    return f"deadletter.{service}.{subject}"


STAFF_GALLERY_BUCKET = "staff_gallery"
"""NATS KV bucket of staff galleries: identity writes, edges watch `<tenant>.*`."""


def staff_gallery_key(tenant: str, staff_id: str) -> str:
    return f"{tenant}.{staff_id}"


REGISTRY_BUCKET = "registry"
"""NATS KV bucket of the registry (sites, cameras, models, retention policy): identity writes, ingest and reporting
watch, the retention jobs read it once per run."""


def registry_site_key(tenant: str, site: str) -> str:
    return f"{tenant}.site.{site}"


def registry_camera_key(tenant: str, camera: str) -> str:
    return f"{tenant}.camera.{camera}"


def registry_models_key(tenant: str) -> str:
    return f"{tenant}.models"


def registry_retention_key(tenant: str) -> str:
    return f"{tenant}.retention"


def tenant_of_registry_key(key: str) -> str:
    """Every registry key starts with its tenant: `<tenant>.site.<id>`, `<tenant>.models`, `<tenant>.retention`."""
    return key.split(".", 1)[0]


def staff_gallery_filter(tenant: str) -> str:
    """The KV subject of a tenant's staff entries: what an edge watches, and all a device may read."""
    return f"$KV.{STAFF_GALLERY_BUCKET}.{staff_gallery_key(tenant, '*')}"


def private_inbox_prefix(owner: str) -> str:
    """The inbox prefix of a bus user (a service name, or a device's user public key).

    Replies, PubAcks and KV watch deliveries go to `<prefix>.<id>`; each user may subscribe only under its
    own prefix, so nobody reads what is delivered to another (a device must never see the matcher's watch
    of every tenant's staff gallery)."""
    return f"_INBOX.{owner}"


def tenant_of_detected(subject: str) -> str | None:
    """The tenant token of a `faces.detected.<tenant>.<site>.<camera>` subject, if it has that shape."""
    parts = subject.split(".")
    return parts[2] if len(parts) == 5 and parts[:2] == ["faces", "detected"] else None


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream: the subjects it captures and how long it keeps them."""

    name: str
    subjects: tuple[str, ...]
    max_age_seconds: int
    duplicate_window_seconds: int = 3600


FACES_DETECTED_STREAM = StreamSpec("FACES_DETECTED", (FACES_DETECTED_ALL,), max_age_seconds=7 * 86400)
FACES_STREAM = StreamSpec(
    "FACES",
    (FACES_INGESTED_ALL, FACES_MATCHED_ALL, FACES_UNIDENTIFIED_ALL, FACES_REJECTED_ALL),
    max_age_seconds=14 * 86400,
)
IDENTITY_STREAM = StreamSpec("IDENTITY", (IDENTITY_ALL,), max_age_seconds=30 * 86400)
VISITS_STREAM = StreamSpec("VISITS", (VISITS_ALL,), max_age_seconds=30 * 86400)
OPERATIONS_STREAM = StreamSpec("OPERATIONS", (OPERATIONS_ALL,), max_age_seconds=30 * 86400)
AUDIT_STREAM = StreamSpec("AUDIT", (AUDIT_ALL,), max_age_seconds=30 * 86400)
DEADLETTER_STREAM = StreamSpec("DEADLETTER", (DEADLETTER_ALL,), max_age_seconds=30 * 86400)

ALL_STREAMS = (
    FACES_DETECTED_STREAM,
    FACES_STREAM,
    IDENTITY_STREAM,
    VISITS_STREAM,
    OPERATIONS_STREAM,
    AUDIT_STREAM,
    DEADLETTER_STREAM,
)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` is one token, a trailing `>` one or more."""
    pattern_tokens, subject_tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > index
        if index >= len(subject_tokens) or token not in ("*", subject_tokens[index]):
            return False
    return len(pattern_tokens) == len(subject_tokens)


@functools.lru_cache(maxsize=4096)
def stream_for_subject(subject: str) -> StreamSpec:
    """The stream that captures `subject`. Cached: every publication asks, and a service publishes on a bounded
    set of subjects (per tenant and site); the walk over every stream's patterns showed in the profiles."""
    for spec in ALL_STREAMS:
        if any(subject_matches(pattern, subject) for pattern in spec.subjects):
            return spec
    raise ValueError(f"no stream captures subject {subject}")
