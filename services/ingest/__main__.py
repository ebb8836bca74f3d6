"""`python -m services.ingest`: validate detected faces, store crops, republish. `python -m services.ingest
retention` deletes every tenant's expired crops once and exits (the chart's CronJob, `make dev`'s scheduler)."""

import argparse
from datetime import UTC, datetime

from schemas.registry import RetentionPolicyEntry
from services.common.http import serve_service
from services.common.logging import configure_logging
from services.common.retention import RetentionRun, run_retention
from services.common.startup import run_service
from services.ingest import handlers
from services.ingest.bootstrap import SERVICE, bootstrap, bootstrap_retention
from services.ingest.config import IngestSettings


async def retention(settings: IngestSettings, now: datetime) -> RetentionRun:
    """Delete the crops each tenant's policy lets go as of `now` (a parameter, so tests choose "today")."""
    async with bootstrap_retention(settings) as job:

        async def delete_expired(policy: RetentionPolicyEntry, as_of: datetime) -> dict[str, int]:
            return await handlers.delete_expired_crops(policy, as_of, job.crops)

        return await run_retention(SERVICE, job.broker.connection, job.publish, settings, now, delete_expired)


async def retention_command() -> None:
    settings = IngestSettings()  # type: ignore[call-arg]
    configure_logging(SERVICE, settings.log_level)
    await retention(settings, datetime.now(UTC))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.ingest")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="consume and serve the API (default)")
    commands.add_parser("retention", help="delete expired crops of every tenant once, then exit")
    args = parser.parse_args()
    if args.command == "retention":
        run_service(retention_command)
    else:
        run_service(lambda: serve_service(SERVICE, IngestSettings, bootstrap))


if __name__ == "__main__":
    main()
