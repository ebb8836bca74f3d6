"""Fail fast, with one clear message, when a dependency is missing or unreachable."""

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from plumbing.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)


class DependencyUnavailable(RuntimeError):
    """A service cannot run without this dependency; the message says which and how to fix it."""


async def wait_for_dependency(name: str, connect: Callable[[], Awaitable[T]], timeout_seconds: float, hint: str) -> T:
    """Retry `connect` with backoff for at most `timeout_seconds`, then raise DependencyUnavailable."""
    deadline = time.monotonic() + timeout_seconds
    delay, last_error = 0.2, ""
    while True:
        try:
            return await asyncio.wait_for(connect(), timeout=max(deadline - time.monotonic(), 0.5))
        except Exception as error:  # any failure to connect is retried until the deadline
            last_error = f"{type(error).__name__}: {error}"
        if time.monotonic() + delay > deadline:
            raise DependencyUnavailable(
                f"{name} unreachable or refusing after {timeout_seconds:.0f}s ({last_error}). {hint}"
            )
        log.info("waiting_for_dependency", dependency=name, error=last_error)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def run_service(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a service's main coroutine; a missing dependency exits with status 2 and one line."""
    try:
        asyncio.run(main())
    except DependencyUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
