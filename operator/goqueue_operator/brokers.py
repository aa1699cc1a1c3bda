"""The only module that talks to brokers, through `goqueue.client` (the one typed client).

`BrokerAdmin` is the small interface the roller, the resize and the scaling procedures need from a cluster's
brokers. `HttpBrokerAdmin` implements it over the broker's HTTP admin API (docs/OPERATOR.md, "Broker admin API"),
whose answers are the broker's own models (`goqueue.models.RestartCheck` …), parsed by the client.

Every check answers a `CheckResult`, and only an explicit positive answer from a broker is OK. A missing endpoint
(HTTP 404 with the router's generic NOT_FOUND code), an unreachable broker, a timeout or an answer that does not
parse are UNAVAILABLE with the reason spelled out: the roller shows it as RollBlocked and waits. Nothing here
ever turns an error into success.

The client is synchronous (httpx); calls run in a worker thread with a short timeout, so a dead broker cannot
block the operator's event loop.

With spec.tls on, brokers are called over https and their certificate is verified against the cluster's CA
bundle (`BrokerTls`). The operator dials pod IPs, which no certificate names, so the TLS handshake checks the
certificate against the pod's DNS name instead (the SNI name: httpx's `sni_hostname` request extension); a broker
certificate that does not chain to the bundle or does not name the pod fails the call like an unreachable broker.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

import httpx

from goqueue.client.auth import Credentials
from goqueue.client.http import ADMIN_CLUSTER, GoQueueClient
from goqueue.errors import GoQueueError, NotFound
from goqueue.security.tls import load_cert_chain_pem
from goqueue_operator.users.principal import OperatorClient

T = TypeVar("T")
A = TypeVar("A")


class CheckStatus(StrEnum):
    OK = "ok"                    # the broker said yes
    FAILED = "failed"            # the broker said no, with reasons
    UNAVAILABLE = "unavailable"  # no answer we can trust: missing endpoint, unreachable, malformed


@dataclass(frozen=True)
class CheckResult:
    status: CheckStatus
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is CheckStatus.OK

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons) if self.reasons else self.status.value

    @classmethod
    def passed(cls) -> CheckResult:
        return cls(CheckStatus.OK)

    @classmethod
    def failed(cls, *reasons: str) -> CheckResult:
        return cls(CheckStatus.FAILED, reasons or ("the broker refused without a reason",))

    @classmethod
    def unavailable(cls, reason: str) -> CheckResult:
        return cls(CheckStatus.UNAVAILABLE, (reason,))


class BrokerAdmin(Protocol):
    """What the operator's procedures ask a cluster's brokers. Broker ids are StatefulSet ordinals."""

    async def metadata_leader(self) -> int | None:
        """Broker id of the metadata Raft leader; None while an election runs. Raises BrokerUnreachable."""
        ...

    async def pre_restart_check(self, broker_id: int) -> CheckResult:
        """OK when restarting this broker now keeps every partition at or above min.insync.replicas and the
        metadata quorum intact."""
        ...

    async def caught_up(self, broker_id: int) -> CheckResult:
        """OK when a restarted broker has rejoined the metadata quorum and every replica it hosts is back in its
        partition's ISR (a Ready pod is not yet a caught-up broker)."""
        ...

    async def transfer_leadership(self, from_id: int) -> CheckResult:
        """Move metadata and partition leadership off this broker; OK when it leads nothing."""
        ...

    async def held_replicas(self, broker_id: int) -> CheckResult:
        """OK when the broker hosts no partition replica (it may leave); FAILED says how many it holds."""
        ...

    async def drain(self, broker_id: int) -> CheckResult:
        """Start (or continue) moving every replica off this broker; OK once it holds none."""
        ...

    async def rebalance(self) -> CheckResult:
        """Spread replicas over all brokers (after a scale-up); OK when accepted."""
        ...

    def close(self) -> None:
        """Release the connection pool."""
        ...


class BrokerUnreachable(Exception):
    """No broker answered a question that has no safe default (who is the metadata leader?)."""


def describe_error(exc: GoQueueError, method: str, path: str) -> str:
    """Why a call gave no usable answer, in words an on-call engineer can act on."""
    if type(exc) is NotFound:  # the router's generic 404: this broker has no such endpoint
        return f"the broker does not implement {method} {path} yet (HTTP 404)"
    if type(exc) is GoQueueError:  # an error code this client does not know (e.g. 405 METHOD_NOT_ALLOWED)
        return f"{method} {path} failed: {exc.message}"
    return f"{method} {path}: {exc.code}: {exc.message}"


@dataclass(frozen=True)
class BrokerTls:
    """How to verify one broker: the CA bundle (PEM) and the name its certificate must carry."""

    ca_pem: bytes
    server_name: str
    identity: tuple[bytes, bytes] | None = None  # (certificate, key) to present: brokers requiring client certificates


class VerifiedAs(httpx.BaseTransport):
    """An https transport that verifies the broker against `tls.ca_pem` as `tls.server_name`, whatever address
    the URL holds. The seam for the client's own TLS option (`GoQueueClient(..., tls=...)`, issue 15 item 3),
    which takes a CA file but cannot verify an IP-addressed broker by name."""

    def __init__(self, tls: BrokerTls) -> None:
        context = ssl.create_default_context(cadata=tls.ca_pem.decode("ascii"))
        if tls.identity is not None:
            load_cert_chain_pem(context, *tls.identity)
        self._inner = httpx.HTTPTransport(verify=context)
        self._server_name = tls.server_name

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions, "sni_hostname": self._server_name}
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def broker_client(server: str, timeout_s: float, tls: BrokerTls | None = None,
                  credentials: Credentials | None = None) -> GoQueueClient:
    """The operator's client of one broker (https and verified when `tls` is given), as the operator's own principal
    (`credentials`, users/principal.py)."""
    client = OperatorClient(server, timeout_s=timeout_s, credentials=credentials,
                            transport=VerifiedAs(tls) if tls is not None else None)
    client.broker_tls = tls
    return client


class HttpBrokerAdmin:
    """`BrokerAdmin` over one broker's HTTP admin API (any broker answers for the whole cluster)."""

    def __init__(self, server: str, timeout_s: float = 5.0,
                 client_factory: Callable[[str, float], GoQueueClient] | None = None,
                 tls: BrokerTls | None = None, credentials: Credentials | None = None) -> None:
        self.server = server
        factory = client_factory or (lambda url, timeout: broker_client(url, timeout, tls, credentials))
        self._client = factory(server, timeout_s)

    def close(self) -> None:
        self._client.close()

    async def _ask(self, method: str, path: str, call: Callable[[GoQueueClient], A]) -> A | str:
        """The parsed answer of `call` (to `method path`), or why there is none."""
        try:
            return await asyncio.to_thread(call, self._client)
        except GoQueueError as exc:
            return describe_error(exc, method, path)
        except ValueError as exc:  # pydantic's ValidationError too: an answer of the wrong shape
            return f"{method} {path} answered something unexpected: {str(exc).splitlines()[0]}"

    async def metadata_leader(self) -> int | None:
        try:
            leader = await asyncio.to_thread(self._client.cluster_leader)
        except GoQueueError as exc:
            raise BrokerUnreachable(describe_error(exc, "GET", "/v1/cluster/leader")) from exc
        return leader.leader

    async def pre_restart_check(self, broker_id: int) -> CheckResult:
        answer = await self._ask("GET", f"{ADMIN_CLUSTER}/brokers/{broker_id}/pre-restart-check",
                                 lambda client: client.pre_restart_check(broker_id))
        if isinstance(answer, str):
            return CheckResult.unavailable(answer)
        return CheckResult.passed() if answer.safe else CheckResult.failed(*answer.reasons)

    async def caught_up(self, broker_id: int) -> CheckResult:
        answer = await self._ask("GET", f"{ADMIN_CLUSTER}/brokers/{broker_id}/caught-up",
                                 lambda client: client.caught_up(broker_id))
        if isinstance(answer, str):
            return CheckResult.unavailable(answer)
        return CheckResult.passed() if answer.caught_up else CheckResult.failed(*answer.reasons)

    async def transfer_leadership(self, from_id: int) -> CheckResult:
        answer = await self._ask("POST", f"{ADMIN_CLUSTER}/brokers/{from_id}/transfer-leadership",
                                 lambda client: client.transfer_leadership(from_id))
        if isinstance(answer, str):
            return CheckResult.unavailable(answer)
        return CheckResult.passed() if answer.done else CheckResult.failed(*answer.reasons)

    async def held_replicas(self, broker_id: int) -> CheckResult:
        answer = await self._ask("GET", f"{ADMIN_CLUSTER}/brokers/{broker_id}/replicas",
                                 lambda client: client.held_replicas(broker_id))
        if isinstance(answer, str):
            return CheckResult.unavailable(answer)
        if answer.replicas == 0:
            return CheckResult.passed()
        return CheckResult.failed(f"broker {broker_id} holds {answer.replicas} partition replicas "
                                  f"({answer.leaders} as leader)")

    async def drain(self, broker_id: int) -> CheckResult:
        answer = await self._ask("POST", f"{ADMIN_CLUSTER}/brokers/{broker_id}/drain",
                                 lambda client: client.drain(broker_id))
        if isinstance(answer, str):
            return CheckResult.unavailable(answer)
        if answer.done:
            return CheckResult.passed()
        return CheckResult.failed(f"broker {broker_id} still holds {answer.replicas} replicas", *answer.reasons)

    async def rebalance(self) -> CheckResult:
        answer = await self._ask("POST", f"{ADMIN_CLUSTER}/rebalance", lambda client: client.rebalance())
        if isinstance(answer, str):
            return CheckResult.unavailable(answer)
        return CheckResult.passed() if answer.accepted else CheckResult.failed(*answer.reasons)


def broker_url(ip: str, port: int, *, tls: bool = False) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"{'https' if tls else 'http'}://{host}:{port}"


async def in_thread(call: Callable[[], T]) -> T:
    """Run one synchronous `GoQueueClient` call off the event loop."""
    return await asyncio.to_thread(call)
