"""What every handler needs, built once at start-up and handed over through kopf's `memo`.

Why not module globals: tests and a second operator in one process get their own; and only `main` reads the
environment (settings) and only start-up opens connections (the Kubernetes client).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue_operator.brokers import BrokerAdmin, BrokerTls, HttpBrokerAdmin, broker_client
from goqueue_operator.kube import Kube
from goqueue_operator.metrics import OperatorMetrics
from goqueue_operator.settings import OperatorSettings


class ObjectLocks:
    """One asyncio lock per object uid. Why: kopf runs timers in parallel with change handlers of the same object;
    the lock keeps one reconcile of an object at a time, so status is written by one hand."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, uid: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock:
            yield

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)


@dataclass
class OperatorContext:
    settings: OperatorSettings
    kube: Kube
    metrics: OperatorMetrics
    locks: ObjectLocks = field(default_factory=ObjectLocks)
    admin_factory: Callable[[str], BrokerAdmin] | None = None
    client_factory: Callable[[str], GoQueueClient] | None = None
    _clients: dict[tuple[str, BrokerTls | None, Credentials | None], GoQueueClient] = field(default_factory=dict)

    def admin(self, server: str, tls: BrokerTls | None = None, credentials: Credentials | None = None) -> BrokerAdmin:
        """`credentials`: the operator's own principal on that cluster (users/principal.py)."""
        if self.admin_factory is not None:
            return self.admin_factory(server)
        return HttpBrokerAdmin(server, timeout_s=self.settings.broker_timeout_s, tls=tls, credentials=credentials)

    def client(self, server: str, tls: BrokerTls | None = None,
               credentials: Credentials | None = None) -> GoQueueClient:
        """A pooled client per broker URL, trust and principal (keep-alive connections; creating one per reconcile
        costs more than the reconcile). Bounded: pod IPs change, so the pool is cleared when it outgrows a few
        clusters."""
        if self.client_factory is not None:
            return self.client_factory(server)
        # A renewed CA bundle or a new password is a new key: the old client's trust or session is not reused.
        key = (server, tls, credentials)
        if key not in self._clients:
            if len(self._clients) >= MAX_POOLED_CLIENTS:
                self.close_clients()
            self._clients[key] = broker_client(server, self.settings.broker_timeout_s, tls, credentials)
        return self._clients[key]

    def close_clients(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


CONTEXT_KEY = "goqueue_context"
MAX_POOLED_CLIENTS = 256


def context_of(memo: Any) -> OperatorContext:
    context = memo[CONTEXT_KEY]
    assert isinstance(context, OperatorContext), "the start-up handler did not run"
    return context
