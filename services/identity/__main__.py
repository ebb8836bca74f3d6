"""`python -m services.identity`: the person directory."""

from services.common.http import serve_service
from services.common.startup import run_service
from services.identity.bootstrap import SERVICE, bootstrap
from services.identity.config import IdentitySettings

if __name__ == "__main__":
    run_service(lambda: serve_service(SERVICE, IdentitySettings, bootstrap))
