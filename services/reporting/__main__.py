"""`python -m services.reporting`: visits and visitor reports. `python -m services.reporting retention` deletes
every tenant's expired sightings and visits once and exits (the chart's CronJob, `make dev`'s scheduler)."""

from datetime import datetime

from schemas.registry import RetentionPolicyEntry
from services.common.http import serve_or_retention
from services.common.retention import RetentionRun, read_policies, run_retention
from services.reporting import handlers
from services.reporting.bootstrap import SERVICE, bootstrap, bootstrap_retention
from services.reporting.config import ReportingSettings


async def retention(settings: ReportingSettings, now: datetime) -> RetentionRun:
    """Delete what each tenant's policy lets go as of `now` (a parameter, so tests choose "today")."""
    async with bootstrap_retention(settings) as job:
        policies = await read_policies(job.broker.connection, settings)
        default = settings.default_retention("default")  # stands for the tenants without a policy of their own
        dropped = await handlers.drop_expired_partitions(list(policies.values()), default, now, job.store, job.rules)

        async def delete_expired(policy: RetentionPolicyEntry, as_of: datetime) -> dict[str, int]:
            by_partition = dropped.get(policy.tenant_id)
            return await handlers.delete_expired_sightings_and_visits(policy, as_of, job.store, job.rules, by_partition)

        return await run_retention(SERVICE, job.broker.connection, job.publish, settings, now, delete_expired)


def main() -> None:
    serve_or_retention(
        SERVICE,
        ReportingSettings,
        bootstrap,
        retention,
        "delete expired sightings and visits of every tenant once, then exit",
    )


if __name__ == "__main__":
    main()
