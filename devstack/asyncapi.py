"""Generate `docs/asyncapi.yaml`, the AsyncAPI document of every service's subscriptions and publications,
from the FastStream registrations themselves: `python -m devstack.asyncapi [--check]`."""

import sys
from pathlib import Path
from typing import Any

import yaml
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from devstack.generated import write_or_check
from services.audit.config import AuditSettings
from services.audit.consumers import register_consumers as register_audit
from services.common.batch_consumer import BatchConsumer, document_batch_consumers
from services.identity.config import IdentitySettings
from services.identity.consumers import register_consumers as register_identity
from services.ingest.config import IngestSettings
from services.ingest.consumers import register_consumers as register_ingest
from services.matcher.config import MatcherSettings
from services.matcher.consumers import register_consumers as register_matcher
from services.reporting.config import ReportingSettings
from services.reporting.consumers import register_consumers as register_reporting

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"


def documented_broker() -> NatsBroker:
    """A broker (never connected) with every service's registrations; adapters are not needed to describe them."""
    broker = NatsBroker("nats://revisit-nats:4222")
    unused: Any = None  # registrations only close over the adapters; describing them never calls one
    batch_consumers: list[BatchConsumer[Any]] = []
    batch_consumers += register_ingest(
        broker, IngestSettings.model_construct(max_deliveries=5, consumer_workers=64), unused, unused, unused
    )
    batch_consumers += register_matcher(
        broker, MatcherSettings.model_construct(max_deliveries=5, batch_size=64), unused
    )
    batch_consumers += register_identity(
        broker, IdentitySettings.model_construct(max_deliveries=5), unused, unused, unused
    )
    batch_consumers += register_reporting(
        broker, ReportingSettings.model_construct(max_deliveries=5, sighting_batch_size=256), unused, unused, unused
    )
    batch_consumers += register_audit(broker, AuditSettings.model_construct(max_deliveries=5), unused, unused)
    document_batch_consumers(broker, batch_consumers)
    return broker


def render() -> str:
    specification = AsyncAPI(
        documented_broker(),
        title="Revisit events",
        version="1.0.0",
        description="Subjects each Revisit service consumes and publishes. Payload schemas: schemas/json/.",
    )
    # sorted keys: FastStream's own order follows registration internals and is not stable across runs
    return yaml.safe_dump(specification.to_specification().to_jsonable(), sort_keys=True, allow_unicode=True)


def main(argv: list[str]) -> int:
    return write_or_check(DOCUMENT, render(), argv, "make asyncapi")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
