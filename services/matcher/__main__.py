"""`python -m services.matcher`: assign faces to persons through Milvus."""

from services.common.http import serve_service
from services.common.startup import run_service
from services.matcher.bootstrap import SERVICE, bootstrap
from services.matcher.config import MatcherSettings

if __name__ == "__main__":
    run_service(lambda: serve_service(SERVICE, MatcherSettings, bootstrap))
