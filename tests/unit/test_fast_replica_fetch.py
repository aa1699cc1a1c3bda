"""A follower's fetch has two doors on the internal listener that answer alike: `fast_replica_fetch.FastReplicaFetch`
(which answers `POST /internal/v1/replica/fetch` without FastAPI's routing) and the FastAPI route behind it.

Each request goes, signed as a peer signs it, to an internal-listener app with the fast path and to one without it
(`create_app(fast_paths=False)`), over the same stand-in replica manager: the status, the content type, the body
and what reached `serve_replica_fetch` must be equal — for a fetch, a malformed body, a broker error, and a query
string the fast path leaves to FastAPI. It also checks that the fetch took the fast path and that an unsigned one
is refused before either door.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest

from goqueue.api.gatekeeper import Gatekeeper
from goqueue.api.http.app import create_app
from goqueue.api.http.routes import replica
from goqueue.config import Settings
from goqueue.errors import GoQueueError, NotReady
from goqueue.metrics import BrokerMetrics
from goqueue.replication.peers import (
    REPLICA_FETCH_PATH,
    REPLICA_MEDIA_TYPE,
    ReplicaFetchRequest,
    ReplicaFetchResponse,
)
from goqueue.security.broker_credential import HEADER, BrokerSigner, BrokerVerifier, authority

pytestmark = pytest.mark.unit

PASSWORD = "cluster-password"
FETCH = ReplicaFetchRequest(replica_id=2, max_wait_ms=500, max_bytes=1 << 20,
                            partitions=[("orders", 0, 120, 3), ("orders", 1, 7, 3)])
ANSWER = ReplicaFetchResponse(partitions=[("orders", 0, None, 118, 0, b"\x00batch\xff"),
                                          ("orders", 1, "NOT_LEADER", 0, 0, b"")])


@dataclass
class StandInReplicas:
    outcome: ReplicaFetchResponse | GoQueueError = ANSWER
    calls: list[ReplicaFetchRequest] = field(default_factory=list)

    async def serve_replica_fetch(self, request: ReplicaFetchRequest) -> ReplicaFetchResponse:
        self.calls.append(request)
        if isinstance(self.outcome, GoQueueError):
            raise self.outcome
        return self.outcome


@dataclass
class StandIn:
    """What the internal listener's replica route touches of `Broker`."""

    replicas: StandInReplicas
    settings: Settings = field(default_factory=lambda: Settings.model_validate({}))
    metrics: BrokerMetrics = field(default_factory=BrokerMetrics)

    def __post_init__(self) -> None:
        self.membership = SimpleNamespace(legacy_peers=list, view=None)


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies that reached the FastAPI route (the fast path holds its own reference to the decoder)."""
    seen: list[bytes] = []
    original = replica.decode_fetch

    def counted(body: bytes) -> ReplicaFetchRequest:
        seen.append(body)
        return original(body)

    monkeypatch.setattr(replica, "decode_fetch", counted)
    return seen


def _answers(body: bytes, *, outcome: ReplicaFetchResponse | GoQueueError = ANSWER, query: str = "",
             signed: bool = True) -> tuple[int, str | None, bytes, list[ReplicaFetchRequest]]:
    answers = []
    for fast in (True, False):
        stand_in = StandIn(StandInReplicas(outcome))
        verifier = BrokerVerifier(PASSWORD, authority("broker", 80), time.time)
        app = create_app(stand_in, gatekeeper=Gatekeeper(stand_in.settings, lambda: None),  # type: ignore[arg-type]
                         listener="internal", verifier=verifier, fast_paths=fast)
        target = REPLICA_FETCH_PATH + (f"?{query}" if query else "")
        headers = {"content-type": REPLICA_MEDIA_TYPE}
        if signed:
            signer = BrokerSigner(2, PASSWORD, time.time)
            headers[HEADER] = signer.credential(authority("broker", 80), "POST", target.encode(), body)

        async def post(app: Any = app, target: str = target, headers: dict[str, str] = headers) -> httpx.Response:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
                return await client.post(target, content=body, headers=headers)

        response = asyncio.run(post())
        answers.append((response.status_code, response.headers.get("content-type"), response.content,
                        list(stand_in.replicas.calls)))
    assert answers[0] == answers[1], f"fast path {answers[0]} != FastAPI route {answers[1]}"
    return answers[0]


def test_a_fetch_is_answered_alike_and_takes_the_fast_path(route_calls: list[bytes]) -> None:
    status, content_type, body, calls = _answers(msgspec.msgpack.encode(FETCH))
    assert (status, content_type) == (200, REPLICA_MEDIA_TYPE)
    assert msgspec.msgpack.decode(body, type=ReplicaFetchResponse) == ANSWER
    assert calls == [FETCH]
    assert len(route_calls) == 1, "the fetch went to the FastAPI route on the app with the fast path too"


def test_a_malformed_fetch_is_refused_alike() -> None:
    status, _, body, calls = _answers(b"\x93not a fetch")
    assert (status, msgspec.json.decode(body)["error"]["code"], calls) == (400, "INVALID_REQUEST", [])


def test_a_broker_error_is_answered_alike() -> None:
    status, _, body, calls = _answers(msgspec.msgpack.encode(FETCH), outcome=NotReady("recovering"))
    error = msgspec.json.decode(body)["error"]
    assert (status, error["code"], error["retriable"], calls) == (503, "NOT_READY", True, [FETCH])


def test_what_the_fast_path_does_not_take_is_answered_by_fastapi(route_calls: list[bytes]) -> None:
    status, _, _, calls = _answers(msgspec.msgpack.encode(FETCH), query="x=1")
    assert (status, calls) == (200, [FETCH])
    assert len(route_calls) == 2, "a fetch with a query string took the fast path"


def test_an_unsigned_fetch_is_refused_before_either_door() -> None:
    status, _, body, calls = _answers(msgspec.msgpack.encode(FETCH), signed=False)
    assert (status, msgspec.json.decode(body)["error"]["code"], calls) == (401, "UNAUTHENTICATED", [])


def test_the_public_listener_has_no_fast_path_and_no_route_for_a_fetch() -> None:
    """Only the internal listener answers follower fetches; on the client port the route exists only while a broker
    of the previous version is a member (`deps.legacy_peers_only`), and the fast path never."""
    stand_in = StandIn(StandInReplicas())
    app = create_app(stand_in, gatekeeper=Gatekeeper(stand_in.settings, lambda: None),  # type: ignore[arg-type]
                     listener="public")

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
            return await client.post(REPLICA_FETCH_PATH, content=msgspec.msgpack.encode(FETCH),
                                     headers={"content-type": REPLICA_MEDIA_TYPE})

    response = asyncio.run(post())
    assert (response.status_code, response.json()["error"]["code"], stand_in.replicas.calls) == (404, "NOT_FOUND", [])
