"""The binary produce's two HTTP doors answer alike: `fast_produce.FastBatchProduce` (which answers the common shape
of `POST …/partitions/{p}/batches` without FastAPI's routing) and the FastAPI route it stands in front of.

Each request goes to an app with the fast path and to one without it (`create_app(fast_paths=False)`), over the
same stand-in broker and a real `Gatekeeper`: the status, the content type, the JSON answer and what reached
`Broker.append_batch` (topic, partition, bytes, acks, forwarded) must be equal — for successes, every refusal of
the gatekeeper (no credentials, a bad token, a certificate without an ACL), the internal-topic guard, the size
limit, a broker error, a body holding a lone surrogate, and the malformed requests the fast path leaves to FastAPI.
It also checks that the requests meant for the fast path took it, and that on the internal listener it sits behind
the broker-credential check.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from goqueue.api.gatekeeper import Gatekeeper
from goqueue.api.http import fast_produce
from goqueue.api.http.app import create_app
from goqueue.api.http.routes import records
from goqueue.config import Settings
from goqueue.errors import DiskFull, GoQueueError, NotLeader
from goqueue.metrics import BrokerMetrics
from goqueue.models import Acks
from goqueue.replication.peers import FORWARDED_HEADER
from goqueue.storage import batch as batches
from goqueue.storage.log import AppendResult

pytestmark = pytest.mark.unit

BATCH = bytes(batches.build_batch([(None, b"v" * 100, [])] * 3, 1_700_000_000_000))
ALICE_MAY_PRODUCE = {"principal": "User:alice", "resource_type": "topic", "name": "orders", "pattern": "literal",
                     "operation": "produce", "allow": True}


@dataclass
class StandIn:
    """What the produce route touches of `Broker`."""

    settings: Settings
    outcome: AppendResult | GoQueueError = field(default_factory=lambda: AppendResult(7, 9))
    legacy: list[int] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    metrics: BrokerMetrics = field(default_factory=BrokerMetrics)

    def __post_init__(self) -> None:
        self.membership = SimpleNamespace(legacy_peers=lambda: self.legacy, view=None)

    async def append_batch(self, topic: str, index: int, batch: bytearray, acks: Acks = Acks.ALL,
                           forwarded: bool = False) -> AppendResult:
        self.calls.append((topic, index, bytes(batch), acks, forwarded))
        if isinstance(self.outcome, GoQueueError):
            raise self.outcome
        return self.outcome


class WithCertificate:
    """A verified client certificate on every request, as `connection_limits` adds it for an mTLS connection."""

    def __init__(self, app: ASGIApp, name: str | None) -> None:
        self.app, self.name = app, name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.name is not None and scope["type"] == "http":
            scope.setdefault("extensions", {})["tls"] = {"client_cert_name": self.name}
        await self.app(scope, receive, send)


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the requests that reached the FastAPI route (the fast path calls its own reference)."""
    seen: list[str] = []
    original = records.append_binary_batch

    async def counted(*args: Any, **kwargs: Any) -> bytes:
        seen.append(args[1])
        return await original(*args, **kwargs)

    monkeypatch.setattr(records, "append_binary_batch", counted)
    assert fast_produce.append_binary_batch is original
    return seen


def _doors(security: dict[str, Any], *, listener: str = "public", acls: list[dict[str, Any]] | None = None,
           certificate: str | None = None, limits: dict[str, Any] | None = None,
           **broker: Any) -> list[tuple[ASGIApp, StandIn]]:
    doors = []
    for fast in (True, False):
        settings = Settings.model_validate({"security": security, "limits": limits or {}})
        stand_in = StandIn(settings, **broker)
        view = SimpleNamespace(users={}, acls=acls or [], applied=1)
        keeper = Gatekeeper(settings, lambda view=view: view)  # type: ignore[misc]
        app = create_app(stand_in, gatekeeper=keeper, listener=listener, fast_paths=fast)  # type: ignore[arg-type]
        doors.append((WithCertificate(app, certificate), stand_in))
    return doors


def _post(app: ASGIApp, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(post())


def _answers(doors: list[tuple[ASGIApp, StandIn]], path: str, body: bytes = BATCH,
             headers: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
    answers = []
    for app, stand_in in doors:
        stand_in.calls.clear()
        response = _post(app, path, body, headers or {})
        content = response.json() if response.content else None
        answers.append((response.status_code, response.headers.get("content-type"), content, list(stand_in.calls)))
    assert answers[0] == answers[1], f"fast path {answers[0]} != FastAPI route {answers[1]}"
    return answers


OPEN = {"allowAnonymous": True, "aclsEnabled": False}
CLOSED = {"allowAnonymous": False, "aclsEnabled": True}
TAKEN = "/v1/topics/orders/partitions/2/batches"


@pytest.mark.parametrize(("query", "acks"), [("", Acks.ALL), ("?acks=all", Acks.ALL), ("?acks=1", Acks.ONE),
                                             ("?acks=0", Acks.NONE)])
def test_a_produce_is_answered_alike_and_takes_the_fast_path(route_calls: list[str], query: str,
                                                             acks: Acks) -> None:
    [(status, content_type, body, calls), _] = _answers(_doors(OPEN), TAKEN + query)
    assert (status, content_type) == (200, "application/json")
    assert body == {"topic": "orders", "offsets": [{"partition": 2, "offset": n} for n in (7, 8, 9)],
                    "duplicate": False}
    assert calls == [("orders", 2, BATCH, acks, False)]
    assert route_calls == ["orders"]  # only the app without the fast path reached the route


def test_a_duplicate_and_an_unacknowledged_answer_alike(route_calls: list[str]) -> None:
    [(_, _, body, _), _] = _answers(_doors(OPEN, outcome=AppendResult(4, 5, duplicate=True)), TAKEN)
    assert body["duplicate"] is True
    assert len(body["offsets"]) == 2
    [(_, _, body, _), _] = _answers(_doors(OPEN, outcome=AppendResult(-1, -1)), TAKEN + "?acks=0")
    assert body["offsets"] == []
    assert route_calls == ["orders", "orders"]


@pytest.mark.parametrize("error", [NotLeader("led elsewhere", leader=2), DiskFull("full")])
def test_a_broker_error_is_answered_alike(route_calls: list[str], error: GoQueueError) -> None:
    [(status, _, body, _), _] = _answers(_doors(OPEN, outcome=error), TAKEN)
    assert (status, body["error"]["code"]) == (error.http_status, error.code)
    assert route_calls == ["orders"]


def test_the_gatekeeper_refuses_alike(route_calls: list[str]) -> None:
    [(status, _, body, calls), _] = _answers(_doors(CLOSED), TAKEN)
    assert (status, body["error"]["code"], calls) == (401, "UNAUTHENTICATED", [])
    [(status, _, body, calls), _] = _answers(_doors(CLOSED), TAKEN, headers={"authorization": "Bearer forged"})
    assert (status, body["error"]["code"], calls) == (401, "UNAUTHENTICATED", [])
    [(status, _, body, calls), _] = _answers(_doors(CLOSED, certificate="bob", acls=[ALICE_MAY_PRODUCE]), TAKEN)
    assert (status, body["error"]["code"], calls) == (403, "FORBIDDEN", [])
    [(status, _, _, calls), _] = _answers(_doors(CLOSED, certificate="alice", acls=[ALICE_MAY_PRODUCE]), TAKEN)
    assert (status, len(calls)) == (200, 1)


def test_the_internal_topic_guard_and_the_size_limit_refuse_alike() -> None:
    [(status, _, body, calls), _] = _answers(_doors(OPEN), "/v1/topics/__consumer_state/partitions/0/batches")
    assert (status, body["error"]["code"], calls) == (400, "INVALID_REQUEST", [])
    [(status, _, _, calls), _] = _answers(_doors(OPEN, limits={"maxRequestBytes": 1024}), TAKEN, body=BATCH * 4)
    assert (status, calls) == (413, [])


def test_a_json_body_with_a_lone_surrogate_is_refused_alike() -> None:
    [(status, _, body, calls), _] = _answers(_doors(OPEN), TAKEN, body=b'{"x": "\\ud800"}',
                                             headers={"content-type": "application/json"})
    assert (status, body["error"]["code"], calls) == (400, "INVALID_REQUEST", [])


@pytest.mark.parametrize("legacy", [[], [3]])
def test_the_forwarded_header_counts_alike(legacy: list[int]) -> None:
    [(_, _, _, calls), _] = _answers(_doors(OPEN, legacy=legacy), TAKEN, headers={FORWARDED_HEADER: "1"})
    assert calls[0][4] is bool(legacy)


@pytest.mark.parametrize("path", [
    "/v1/topics/orders/partitions/02/batches", "/v1/topics/orders/partitions/-1/batches",
    "/v1/topics/orders/partitions/99999999999/batches", "/v1/topics/orders/partitions/x/batches",
    TAKEN + "?acks=2", TAKEN + "?acks=1&acks=0", TAKEN + "?other=1",
])
def test_what_the_fast_path_does_not_take_is_answered_by_fastapi(route_calls: list[str], path: str) -> None:
    _answers(_doors(OPEN), path)  # equal answers, and both from the route
    assert len(route_calls) in (0, 2)


def test_a_topic_name_outside_the_pattern_keeps_the_models_escaping() -> None:
    [(status, _, body, _), _] = _answers(_doors(OPEN), "/v1/topics/caf%C3%A9%22/partitions/0/batches")
    assert (status, body["topic"]) == (200, 'café"')


def test_on_the_internal_listener_the_credential_check_comes_first() -> None:
    [(status, _, body, calls), _] = _answers(_doors(CLOSED, listener="internal"), TAKEN)
    assert (status, body["error"]["code"], calls) == (401, "UNAUTHENTICATED", [])


def test_the_answer_is_the_models_json() -> None:
    for result in (AppendResult(0, 0), AppendResult(10, 109, duplicate=True), AppendResult(-1, -1)):
        count = result.last_offset - result.base_offset + 1 if result.base_offset >= 0 else 0
        model = records.ProduceResponse(topic="a.b-c_9", duplicate=result.duplicate, offsets=[
            records.RecordOffset(partition=3, offset=result.base_offset + n) for n in range(count)])
        assert records.produce_answer("a.b-c_9", 3, result) == model.model_dump_json().encode()
        assert json.loads(records.produce_answer("a.b-c_9", 3, result)) == json.loads(model.model_dump_json())
