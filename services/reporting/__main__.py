"""`python -m services.reporting`: visits and visitor reports."""

from services.common.http import serve_service
from services.common.startup import run_service
from services.reporting.bootstrap import SERVICE, bootstrap
from services.reporting.config import ReportingSettings

if __name__ == "__main__":
    run_service(lambda: serve_service(SERVICE, ReportingSettings, bootstrap))
