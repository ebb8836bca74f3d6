"""Ingest as its integration tests build it (its own bootstrap on the session's NATS and S3), for the crafted
events; the REST services of the fuzz lane are built by devstack/fuzz.py."""

from tests.ingest.integration.conftest import detected, ingest

__all__ = ["detected", "ingest"]
