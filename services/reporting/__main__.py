"""`python -m services.reporting`: visits and visitor reports. `python -m services.reporting retention` deletes
every tenant's expired sightings and visits once and exits (the chart's CronJob, `make dev`'s scheduler)."""

import argparse
from datetime import UTC, datetime

from schemas.registry import RetentionPolicyEntry
from services.common.http import serve_service
from services.common.logging import configure_logging
from services.common.retention import RetentionRun, run_retention
from services.common.startup import run_service
from services.reporting import handlers
from services.reporting.bootstrap import SERVICE, bootstrap, bootstrap_retention
from services.reporting.config import ReportingSettings


async def retention(settings: ReportingSettings, now: datetime) -> RetentionRun:
    """Delete what each tenant's policy lets go as of `now` (a parameter, so tests choose "today")."""
    async with bootstrap_retention(settings) as job:

        async def delete_expired(policy: RetentionPolicyEntry, as_of: datetime) -> dict[str, int]:
            return await handlers.delete_expired_sightings_and_visits(policy, as_of, job.store, job.rules)

        return await run_retention(SERVICE, job.broker.connection, job.publish, settings, now, delete_expired)


async def retention_command() -> None:
    settings = ReportingSettings()  # type: ignore[call-arg]
    configure_logging(SERVICE, settings.log_level)
    await retention(settings, datetime.now(UTC))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.reporting")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="consume and serve the API (default)")
    commands.add_parser("retention", help="delete expired sightings and visits of every tenant once, then exit")
    args = parser.parse_args()
    if args.command == "retention":
        run_service(retention_command)
    else:
        run_service(lambda: serve_service(SERVICE, ReportingSettings, bootstrap))


if __name__ == "__main__":
    main()
