"""`python -m services.ingest`: validate detected faces, store crops, republish. `python -m services.ingest
retention` deletes every tenant's expired crops once and exits (the chart's CronJob, `make dev`'s scheduler)."""

from datetime import datetime

from schemas.registry import RetentionPolicyEntry
from services.common.http import serve_or_retention
from services.common.retention import RetentionRun, run_retention
from services.ingest import handlers
from services.ingest.bootstrap import SERVICE, bootstrap, bootstrap_retention
from services.ingest.config import IngestSettings


async def retention(settings: IngestSettings, now: datetime) -> RetentionRun:
    """Delete the crops each tenant's policy lets go as of `now` (a parameter, so tests choose "today")."""
    async with bootstrap_retention(settings) as job:

        async def delete_expired(policy: RetentionPolicyEntry, as_of: datetime) -> dict[str, int]:
            return await handlers.delete_expired_crops(policy, as_of, job.crops)

        return await run_retention(SERVICE, job.broker.connection, job.publish, settings, now, delete_expired)


def main() -> None:
    serve_or_retention(
        SERVICE, IngestSettings, bootstrap, retention, "delete expired crops of every tenant once, then exit"
    )


if __name__ == "__main__":
    main()
