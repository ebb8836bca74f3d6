"""`python -m services.ingest`: validate detected faces, store crops, republish."""

from services.common.http import serve
from services.common.logging import configure_logging
from services.common.startup import run_service
from services.ingest.bootstrap import SERVICE, bootstrap
from services.ingest.config import IngestSettings


async def main() -> None:
    settings = IngestSettings()  # type: ignore[call-arg]  # fields come from the environment
    configure_logging(SERVICE, settings.log_level)
    async with bootstrap(settings) as ingest:
        await serve(ingest.app, settings.http_host, settings.http_port, ingest.broker)


if __name__ == "__main__":
    run_service(main)
