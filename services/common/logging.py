"""The services log through the plumbing the edge shares (`plumbing.logging`); imported from here as before."""

from plumbing.logging import configure_logging, get_logger

__all__ = ["configure_logging", "get_logger"]
