"""`python -m services.ingest`: validate detected faces, store crops, republish."""

from services.common.http import serve_service
from services.common.startup import run_service
from services.ingest.bootstrap import SERVICE, bootstrap
from services.ingest.config import IngestSettings

if __name__ == "__main__":
    run_service(lambda: serve_service(SERVICE, IngestSettings, bootstrap))
