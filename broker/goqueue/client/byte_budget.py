"""The batching producer's bound on buffered bytes (Kafka's `buffer.memory`): a `send` waits while the records
sent and not yet acknowledged hold the whole budget, so a slow broker slows its senders instead of growing memory.

Waiters are served first come, first served: a large record waiting is not overtaken forever by small ones.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ByteBudget:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the buffer bound must be at least 1 byte, got {limit}")
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Senders waiting for room."""
        return len(self._waiters)

    def fits(self, size: int) -> bool:
        """`acquire(size)` would take it at once."""
        return not self._waiters and self.used + size <= self.limit

    async def acquire(self, size: int) -> None:
        """Take `size` bytes, waiting until they are free (`size` must not exceed the limit)."""
        assert 0 < size <= self.limit, "a record larger than the whole buffer can never be taken"
        if self.fits(size):
            self.used += size
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((size, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(size)  # granted just as the waiter was cancelled: give it back
            else:
                self._waiters.remove((size, granted))
                self._grant()  # the head may have been holding others back
            raise

    def release(self, size: int) -> None:
        self.used -= size
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            size, granted = self._waiters.popleft()
            self.used += size
            granted.set_result(None)
