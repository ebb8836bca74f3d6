"""`python -m services.matcher`: assign faces to persons through Milvus."""

from services.common.http import serve
from services.common.logging import configure_logging
from services.common.startup import run_service
from services.matcher.bootstrap import SERVICE, bootstrap
from services.matcher.config import MatcherSettings


async def main() -> None:
    settings = MatcherSettings()  # type: ignore[call-arg]  # fields come from the environment
    configure_logging(SERVICE, settings.log_level)
    async with bootstrap(settings) as matcher:
        await serve(matcher.app, settings.http_host, settings.http_port, matcher.broker)


if __name__ == "__main__":
    run_service(main)
