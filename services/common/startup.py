"""The services fail fast through the plumbing the edge shares (`plumbing.startup`); imported from here as before."""

from plumbing.startup import DependencyUnavailable, run_service, wait_for_dependency

__all__ = ["DependencyUnavailable", "run_service", "wait_for_dependency"]
