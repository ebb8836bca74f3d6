"""`python -m services.identity`: the person directory."""

from services.common.http import serve
from services.common.logging import configure_logging
from services.common.startup import run_service
from services.identity.bootstrap import SERVICE, bootstrap
from services.identity.config import IdentitySettings


async def main() -> None:
    settings = IdentitySettings()  # type: ignore[call-arg]  # fields come from the environment
    configure_logging(SERVICE, settings.log_level)
    async with bootstrap(settings) as identity:
        await serve(identity.app, settings.http_host, settings.http_port, identity.broker)


if __name__ == "__main__":
    run_service(main)
