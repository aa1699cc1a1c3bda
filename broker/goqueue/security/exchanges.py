"""The SCRAM exchanges a broker has started and not yet finished, each usable once and for a short time.

An exchange is kept in memory by the broker that started it, under a random id the client sends back with its
client-final message (both steps go to the same broker: the clients finish on the connection they started on).
Finishing removes it, so a client-final sent again — or to an exchange that finished or expired — finds nothing and
is refused; at most `max_pending` are kept, the oldest dropped first, so nobody can fill the memory with them.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable

from goqueue.security.scram import ScramError, ServerExchange

EXCHANGE_TTL_S = 30.0
MAX_PENDING = 10_000


class ExchangeTable:
    def __init__(self, clock: Callable[[], float], ttl_s: float = EXCHANGE_TTL_S, max_pending: int = MAX_PENDING):
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_pending = max_pending
        self._pending: OrderedDict[str, tuple[float, ServerExchange]] = OrderedDict()

    def add(self, exchange: ServerExchange) -> str:
        """Keep `exchange`; returns the id the client finishes it with."""
        self._expire()
        while len(self._pending) >= self._max_pending:
            self._pending.popitem(last=False)
        exchange_id = secrets.token_urlsafe(18)
        self._pending[exchange_id] = (self._clock() + self._ttl_s, exchange)
        return exchange_id

    def take(self, exchange_id: str) -> ServerExchange:
        """The pending exchange, removed: it can be finished once. ScramError when unknown, finished or expired."""
        self._expire()
        found = self._pending.pop(exchange_id, None)
        if found is None:
            raise ScramError("no such SCRAM exchange here (finished, expired, or started on another broker): "
                             "start a new one")
        return found[1]

    def _expire(self) -> None:
        now = self._clock()
        while self._pending:
            first = next(iter(self._pending))
            if self._pending[first][0] > now:
                break
            del self._pending[first]

    def __len__(self) -> int:
        return len(self._pending)
