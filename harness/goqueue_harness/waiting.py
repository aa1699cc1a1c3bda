"""Polling with a deadline, the only way harness code and tests wait.

Why: a fixed ``sleep`` then assert is either flaky (too short) or slow (too
long); polling a predicate until a deadline is neither, and the timeout message
names what was awaited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The awaited condition did not hold before the deadline.

    An ``AssertionError`` so pytest reports it as a test failure, not an error.
    """


def wait_until(
    predicate: Callable[[], T | None],
    timeout_s: float,
    *,
    interval_s: float = 0.2,
    message: str = "",
) -> T:
    """Call ``predicate`` until it returns a truthy value; return that value.

    Exceptions raised by the predicate propagate (a bug is not a "not yet").
    """
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for {what} (last value: {last!r})")
        time.sleep(interval_s)


async def async_wait_until(
    predicate: Callable[[], Awaitable[T | None]],
    timeout_s: float,
    *,
    interval_s: float = 0.2,
    message: str = "",
) -> T:
    """The asyncio twin of :func:`wait_until` for harness code running on a loop."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = await predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for {what} (last value: {last!r})")
        await asyncio.sleep(interval_s)
