"""`python -m services.identity`: the person directory. `python -m services.identity retention` deletes every
tenant's expired sightings once and exits (the chart's CronJob, `make dev`'s scheduler)."""

from datetime import datetime

from schemas.registry import RetentionPolicyEntry
from services.common.http import serve_or_retention
from services.common.retention import RetentionRun, run_retention
from services.identity import handlers
from services.identity.bootstrap import SERVICE, bootstrap, bootstrap_retention
from services.identity.config import IdentitySettings


async def retention(settings: IdentitySettings, now: datetime) -> RetentionRun:
    """Delete the sightings each tenant's policy lets go as of `now` (a parameter, so tests choose "today")."""
    async with bootstrap_retention(settings) as job:

        async def delete_expired(policy: RetentionPolicyEntry, as_of: datetime) -> dict[str, int]:
            return await handlers.delete_expired_sightings(policy, as_of, job.directory)

        return await run_retention(SERVICE, job.broker.connection, job.publish, settings, now, delete_expired)


def main() -> None:
    serve_or_retention(
        SERVICE, IdentitySettings, bootstrap, retention, "delete expired sightings of every tenant once, then exit"
    )


if __name__ == "__main__":
    main()
