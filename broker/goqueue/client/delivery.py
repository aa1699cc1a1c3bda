"""How the clients deliver a produce through failures, with Kafka's producer defaults; pure, shared by both clients.

An idempotent produce (`idempotence.py`) is sent again after any retriable error — NOT_LEADER, NOT_ENOUGH_REPLICAS,
NOT_READY, TIMEOUT, PARTITION_OFFLINE, OVERLOADED, DISK_FULL, and UNAVAILABLE: the broker could not be reached, did
not answer in time, or could not reach the leader it forwarded to — until the delivery timeout (Kafka's
`delivery.timeout.ms`, 120 s by default) would pass; then the last error is raised. A resend of a batch that was
written is answered with its original offsets, so retrying never duplicates. OUT_OF_ORDER_SEQUENCE is retried once
the producer moved to a new epoch (see `idempotence.py`). Anything else (a bad request, an unknown topic, a record
too large) fails at once: sending it again cannot succeed.

Between attempts the client waits an exponential back-off (Kafka's `retry.backoff.ms` 100 ms, doubled up to
`retry.backoff.max.ms` 1 s) with ±20 % jitter, so clients that failed together do not come back in lockstep. The
group calls' shorter retry loop (NOT_COORDINATOR and friends, a few attempts) uses the same jitter.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from goqueue.errors import GoQueueError, OutOfOrderSequence

DEFAULT_DELIVERY_TIMEOUT_S = 120.0
RETRY_BACKOFF_S = 0.1
RETRY_BACKOFF_MAX_S = 1.0
JITTER = 0.2


def backoff_s(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """The wait after failed attempt number `attempt` (0 for the first): doubled each time, capped, ±JITTER."""
    base: float = min(max_s, initial_s * 2.0 ** min(attempt, 30))
    return base * rng.uniform(1 - JITTER, 1 + JITTER)


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S
    backoff_initial_s: float = RETRY_BACKOFF_S
    backoff_max_s: float = RETRY_BACKOFF_MAX_S

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"the delivery timeout must be positive, got {self.timeout_s:g}s")

    def retry_delay(self, error: GoQueueError, attempt: int, remaining_s: float, rng: random.Random) -> float | None:
        """Seconds to wait before sending again after `error` (attempt `attempt`, 0 for the first), or None to give
        up: the error is final, or the delivery timeout would pass during the wait."""
        if not (error.retriable or isinstance(error, OutOfOrderSequence)):
            return None
        delay = backoff_s(attempt, self.backoff_initial_s, self.backoff_max_s, rng)
        return delay if delay < remaining_s else None

    def final_error(self, error: GoQueueError, attempts: int) -> GoQueueError:
        """The error a delivery gives up with: a retriable one says it was retried until the delivery timeout."""
        if attempts < 2 or not error.retriable:
            return error
        return type(error)(f"{error.message} (gave up after {attempts} attempts: delivery timeout "
                           f"{self.timeout_s:g}s)", **error.details)


T = TypeVar("T")


async def call_retrying(call: Callable[[], Awaitable[T]], policy: DeliveryPolicy, deadline: float,
                        rng: random.Random) -> T:
    """`call()`, again after each retriable error with back-off, until it answers or `deadline` (monotonic) would
    pass; a final error, or the last one, is raised."""
    attempt = 0
    while True:
        try:
            return await call()
        except GoQueueError as exc:
            delay = policy.retry_delay(exc, attempt, deadline - time.monotonic(), rng)
            if delay is None:
                raise
            await asyncio.sleep(delay)
            attempt += 1


def partly_written(error: GoQueueError, written: int, total: int) -> GoQueueError:
    """A call's records go to several partitions, one request each: the error of a later one says how many of the
    call's records the earlier ones wrote (the call is not atomic)."""
    if not written:
        return error
    return type(error)(f"{error.message} ({written} of the {total} records of this produce were written, to other "
                       "partitions)", **error.details)
