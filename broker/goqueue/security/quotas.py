"""Byte-rate quotas per principal (Kafka's client quotas): how long to hold back the answer of a request that took a
user over its producer or consumer byte rate.

A user's quotas live with its credential in the replicated metadata (`set_user_quotas`); each broker enforces them
alone on the requests clients send it (per broker, as Kafka's are). The request is served first — its size is known
only then — and its bytes are spent from the principal's bucket; the answer is then delayed until the bucket is out
of debt, at most `MAX_THROTTLE_S`, so a client that waits for its answers (every client does, up to its in-flight
limit) slows to the quota. Debt beyond the cap stays owed: the next requests wait for it. A bucket holds at most
`BURST_S` of credit, so a quiet client may burst that much before it is held back.

The principal comes from `current_principal`, set by the gatekeeper when it resolves the caller of a request on the
public listener; a request another broker forwarded (no principal) and the broker's own reads are never throttled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar
from enum import StrEnum

from goqueue.metrics import QuotaMetrics
from goqueue.security.principal import USER, Principal

MAX_THROTTLE_S = 5.0  # below every client's request timeout (the project's default 30 s), as Kafka caps its delay
BURST_S = 1.0  # a bucket's credit is at most one second of its rate

current_principal: ContextVar[Principal | None] = ContextVar("goqueue_principal", default=None)


class Direction(StrEnum):
    PRODUCE = "produce"
    CONSUME = "consume"


# A user's byte rate in one direction from the metadata (None: unlimited, or no such user).
RateLookup = Callable[[str, Direction], int | None]


class ByteRateBucket:
    """A token bucket that lends: `spend` may take it into debt, `delay_s` says how long the debt takes to repay."""

    def __init__(self, rate: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self._clock = clock
        self._balance = rate * BURST_S  # bytes; negative: in debt
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._balance = min(self.rate * BURST_S, self._balance + (now - self._stamp) * self.rate)
        self._stamp = now

    def set_rate(self, rate: int) -> None:
        self._refill()
        self.rate = rate
        self._balance = min(self._balance, rate * BURST_S)

    def spend(self, size: int) -> float:
        """Take `size` bytes; the seconds the answer should wait (0 while in credit), capped."""
        self._refill()
        self._balance -= size
        return min(MAX_THROTTLE_S, max(0.0, -self._balance / self.rate))


class ByteRateQuotas:
    """Every principal's buckets on this broker, following the users' quotas in the metadata."""

    def __init__(self, rate_of: RateLookup, metrics: QuotaMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate_of = rate_of
        self._metrics = metrics
        metrics.bind(lambda user, direction: rate_of(user, Direction(direction)) is not None)
        self._clock = clock
        self._buckets: dict[tuple[str, Direction], ByteRateBucket] = {}

    def delay_s(self, principal: Principal | None, direction: Direction, size: int) -> float:
        """Spend `size` bytes of `principal`'s quota; how long its answer waits (0: no quota, or within it)."""
        if principal is None or principal.type != USER:
            return 0.0
        rate = self._rate_of(principal.name, direction)
        key = (principal.name, direction)
        if rate is None:
            self._buckets.pop(key, None)  # a quota removed (or its user deleted) frees its bucket
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = ByteRateBucket(rate, self._clock)
        elif bucket.rate != rate:
            bucket.set_rate(rate)
        delay = bucket.spend(size)
        if delay > 0:
            self._metrics.observe(principal.name, direction.value, delay)
        return delay

    async def throttle(self, direction: Direction, size: int) -> None:
        """The hook of the produce and fetch paths: after serving `size` bytes to the request's principal."""
        delay = self.delay_s(current_principal.get(), direction, size)
        if delay > 0:
            await asyncio.sleep(delay)
