"""`python -m services.matcher`: assign faces to persons through Milvus. `python -m services.matcher retention`
deletes the vectors of every tenant's persons unseen for the policy's days once and exits."""

from datetime import datetime

from schemas.registry import RetentionPolicyEntry
from services.common.http import serve_or_retention
from services.common.retention import RetentionRun, run_retention
from services.matcher import handlers
from services.matcher.bootstrap import SERVICE, bootstrap, bootstrap_retention
from services.matcher.config import MatcherSettings


async def retention(settings: MatcherSettings, now: datetime) -> RetentionRun:
    """Delete the vectors each tenant's policy lets go as of `now` (a parameter, so tests choose "today")."""
    async with bootstrap_retention(settings) as job:

        async def delete_expired(policy: RetentionPolicyEntry, as_of: datetime) -> dict[str, int]:
            return await handlers.delete_unseen_vectors(policy, as_of, job.index)

        return await run_retention(SERVICE, job.broker.connection, job.publish, settings, now, delete_expired)


def main() -> None:
    serve_or_retention(
        SERVICE, MatcherSettings, bootstrap, retention, "delete the vectors of persons unseen too long, once, then exit"
    )


if __name__ == "__main__":
    main()
