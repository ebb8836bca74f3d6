"""`python -m services.matcher`: assign faces to persons through Milvus. `python -m services.matcher retention`
deletes the vectors of every tenant's persons unseen for the policy's days once and exits."""

import argparse
from datetime import UTC, datetime

from schemas.registry import RetentionPolicyEntry
from services.common.http import serve_service
from services.common.logging import configure_logging
from services.common.retention import RetentionRun, run_retention
from services.common.startup import run_service
from services.matcher import handlers
from services.matcher.bootstrap import SERVICE, bootstrap, bootstrap_retention
from services.matcher.config import MatcherSettings


async def retention(settings: MatcherSettings, now: datetime) -> RetentionRun:
    """Delete the vectors each tenant's policy lets go as of `now` (a parameter, so tests choose "today")."""
    async with bootstrap_retention(settings) as job:

        async def delete_expired(policy: RetentionPolicyEntry, as_of: datetime) -> dict[str, int]:
            return await handlers.delete_unseen_vectors(policy, as_of, job.store)

        return await run_retention(SERVICE, job.broker.connection, job.publish, settings, now, delete_expired)


async def retention_command() -> None:
    settings = MatcherSettings()  # type: ignore[call-arg]
    configure_logging(SERVICE, settings.log_level)
    await retention(settings, datetime.now(UTC))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.matcher")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="consume and serve the API (default)")
    commands.add_parser("retention", help="delete the vectors of persons unseen too long, once, then exit")
    args = parser.parse_args()
    if args.command == "retention":
        run_service(retention_command)
    else:
        run_service(lambda: serve_service(SERVICE, MatcherSettings, bootstrap))


if __name__ == "__main__":
    main()
