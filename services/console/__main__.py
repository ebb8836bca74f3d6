"""`python -m services.console`: the web console for admins and analysts (docs/console.md)."""

from services.common.http import serve
from services.common.logging import configure_logging
from services.common.startup import run_service
from services.console.bootstrap import SERVICE, bootstrap
from services.console.config import ConsoleSettings


async def serve_console() -> None:
    settings = ConsoleSettings()  # type: ignore[call-arg]
    configure_logging(SERVICE, settings.log_level)
    async with bootstrap(settings) as console:
        await serve(console.app, settings.http_host, settings.http_port, None)


def main() -> None:
    run_service(serve_console)


if __name__ == "__main__":
    main()
