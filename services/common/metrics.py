"""Prometheus metrics of the consumers, declared once so dashboards and alerts can rely on them."""

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

CONSUMED_OUTCOMES = ("ok", "dead_lettered", "retried", "outage")
MESSAGES_CONSUMED = Counter(
    "revisit_messages_consumed_total",
    "Messages a consumer finished, by outcome (ok, dead_lettered, retried; outage: a try that waits for a dependency).",
    ["service", "subject_family", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "revisit_handler_seconds",
    "Time a message spent in its handler; for batch consumers, the whole batch's handling, which each of its"
    " messages waited for.",
    ["service", "subject_family"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PUBLISHED = Counter(
    "revisit_events_published_total",
    "Events published to JetStream, by schema.",
    ["service", "schema"],
)

UNIDENTIFIED_SIGHTINGS = Counter(
    "revisit_unidentified_sightings_total",
    "Faces the matcher counted as unidentified sightings (quality below its floor), never persons.",
)
MATCHER_VECTORS_IN_MEMORY = Gauge(
    "revisit_matcher_vectors_in_memory",
    "Face vectors a matcher replica holds in its in-memory copies of tenants (float32, dim x 4 bytes each, plus about"
    " 0.6 KB per row); bounded by REVISIT_MATCHER_MAX_VECTORS_IN_MEMORY.",
)


RETENTION_DELETED = Counter(
    "revisit_retention_deleted_total",
    "Items a retention job deleted, by kind (crops, vectors, sightings, visits...). The job is short-lived and no"
    " Pushgateway is assumed: each run also logs and audits its counts per tenant.",
    ["service", "kind"],
)


def subject_family(subject: str) -> str:
    """The first two tokens of a subject (`faces.ingested`): low-cardinality label, no tenant ids."""
    return ".".join(subject.split(".")[:2])


def count_consumed_from_zero(service: str, filter_subjects: Iterable[str]) -> None:
    """Export every outcome of `service`'s consumers at 0 before the first message.

    A labelled series otherwise appears at its first increment, with no earlier sample, and
    `increase(...[10m]) > 0` cannot see a step in it: the first burst of dead letters would never alert.
    A filter whose first two tokens hold a wildcard (`audit.>`) names no family in advance; its series still
    appear at their first increment (the alert rules catch those as new series, rules/revisit-alerts.yaml).
    """
    for family in {subject_family(subject) for subject in filter_subjects}:
        if "*" in family or ">" in family:
            continue
        for outcome in CONSUMED_OUTCOMES:
            MESSAGES_CONSUMED.labels(service, family, outcome)


KV_MIRROR_RESTARTS = Counter(
    "revisit_kv_mirror_restarts_total",
    "Times an in-memory KV mirror replaced its watch (it ended, stalled behind the bucket, or the bucket's revisions"
    " went back) by a full re-read; exported at 0 when the mirror starts.",
    ["bucket"],
)
KV_MIRROR_CURRENT_AT = Gauge(
    "revisit_kv_mirror_current_timestamp_seconds",
    "Unix time at which an in-memory KV mirror was last confirmed to hold its bucket's last revision (checked every"
    " 10 s): `time() - this` is how stale the mirror may be.",
    ["bucket"],
)
