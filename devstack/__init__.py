"""Local infrastructure and orchestration for `make dev` and the test suite (not shipped to production)."""
