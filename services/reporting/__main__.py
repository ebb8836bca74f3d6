"""`python -m services.reporting`: visits and visitor reports."""

from services.common.http import serve
from services.common.logging import configure_logging
from services.common.startup import run_service
from services.reporting.bootstrap import SERVICE, bootstrap
from services.reporting.config import ReportingSettings


async def main() -> None:
    settings = ReportingSettings()  # type: ignore[call-arg]  # fields come from the environment
    configure_logging(SERVICE, settings.log_level)
    async with bootstrap(settings) as reporting:
        await serve(reporting.app, settings.http_host, settings.http_port, reporting.broker)


if __name__ == "__main__":
    run_service(main)
