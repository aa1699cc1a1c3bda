"""The broker credential: what a signed broker-to-broker request proves, and every way it is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from goqueue.api.http.broker_auth import BrokerCredentialCheck
from goqueue.errors import Unauthenticated
from goqueue.replication.peers import SignedByBroker
from goqueue.security.broker_credential import HEADER, MAX_SKEW_S, BrokerSigner, BrokerVerifier, authority

pytestmark = pytest.mark.unit

PASSWORD = "cluster-secret"


class FakeClock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self, now_s: float = 1_700_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

RECEIVER = authority("goqueue-1.goqueue-headless", 8081)
PATH = b"/internal/v1/replica/fetch?x=1"


def verifier(clock: FakeClock, password: str | None = PASSWORD, capacity: int = 1000) -> BrokerVerifier:
    return BrokerVerifier(password, RECEIVER, clock, nonce_capacity=capacity)


def signed(clock: FakeClock, body: bytes = b"body", password: str = PASSWORD, receiver: bytes = RECEIVER) -> str:
    return BrokerSigner(2, password, clock).credential(receiver, "POST", PATH, body)


def test_a_fresh_credential_names_its_broker_once() -> None:
    clock = FakeClock()
    check = verifier(clock)
    credential = signed(clock)
    assert check.verify(credential, "POST", PATH, b"body") == 2
    with pytest.raises(Unauthenticated, match="replayed"):
        check.verify(credential, "POST", PATH, b"body")


@pytest.mark.parametrize("skew_s", [-MAX_SKEW_S - 1, MAX_SKEW_S + 1])
def test_a_credential_signed_too_far_from_the_receivers_clock_is_stale(skew_s: float) -> None:
    clock = FakeClock()
    check = verifier(clock)
    clock.advance(3600)  # a broker up for an hour
    credential = signed(FakeClock(clock.now_s + skew_s))
    with pytest.raises(Unauthenticated, match="stale"):
        check.verify(credential, "POST", PATH, b"body")
    assert check.verify(signed(FakeClock(clock.now_s + skew_s / 2)), "POST", PATH, b"body") == 2


def test_a_credential_signed_before_the_receiver_restarted_is_stale() -> None:
    """Its nonces died with the previous process: a request captured in the 30 s before a restart must not pass
    again after it."""
    clock = FakeClock()
    captured = signed(clock)
    assert verifier(clock).verify(captured, "POST", PATH, b"body") == 2
    clock.advance(2)  # the receiver restarts 2 s later: well within the skew window
    with pytest.raises(Unauthenticated, match="stale"):
        verifier(clock).verify(captured, "POST", PATH, b"body")
    assert verifier(clock).verify(signed(clock), "POST", PATH, b"body") == 2


@pytest.mark.parametrize(("method", "target", "body", "receiver", "password"), [
    ("POST", PATH, b"other body", RECEIVER, PASSWORD),
    ("POST", b"/internal/v1/replica/fetch?x=2", b"body", RECEIVER, PASSWORD),
    ("PUT", PATH, b"body", RECEIVER, PASSWORD),
    ("POST", PATH, b"body", authority("goqueue-2.goqueue-headless", 8081), PASSWORD),
    ("POST", PATH, b"body", RECEIVER, "another-password"),
])
def test_a_credential_signed_for_another_request_does_not_match(method: str, target: bytes, body: bytes,
                                                                 receiver: bytes, password: str) -> None:
    """Signed for a request that differs from the one received in one thing: body, query, method, receiving broker
    (a request captured on its way to another broker) or password."""
    clock = FakeClock()
    credential = BrokerSigner(2, password, clock).credential(receiver, method, target, body)
    with pytest.raises(Unauthenticated, match="does not match"):
        verifier(clock).verify(credential, "POST", PATH, b"body")


@pytest.mark.parametrize("credential", [None, "", "Bearer x", "v1 broker=1 ts=1 nonce=zz sig=00",
                                        "v2 broker=1 ts=1 nonce=" + "a" * 32 + " sig=" + "b" * 64])
def test_a_missing_or_malformed_credential_is_refused(credential: str | None) -> None:
    with pytest.raises(Unauthenticated):
        verifier(FakeClock()).verify(credential, "POST", PATH, b"body")


def test_without_a_cluster_password_nothing_is_accepted() -> None:
    clock = FakeClock()
    with pytest.raises(Unauthenticated, match=r"no cluster\.password"):
        verifier(clock, password=None).verify(signed(clock), "POST", PATH, b"body")


def test_nonces_forgotten_for_room_make_every_request_as_old_stale() -> None:
    """Past its capacity the verifier forgets the oldest nonces, and with them may not judge a replay: so every
    request signed no later than a forgotten one is refused instead."""
    clock = FakeClock()
    check = verifier(clock, capacity=2)
    first = signed(clock)
    check.verify(first, "POST", PATH, b"body")
    clock.advance(0.001)
    check.verify(signed(clock), "POST", PATH, b"body")
    clock.advance(0.001)
    check.verify(signed(clock), "POST", PATH, b"body")  # `first` is forgotten
    with pytest.raises(Unauthenticated, match="stale"):
        check.verify(first, "POST", PATH, b"body")
    clock.advance(0.001)
    assert check.verify(signed(clock), "POST", PATH, b"body") == 2  # newer requests still pass


def test_the_peer_client_signs_what_the_receiver_checks() -> None:
    """httpx's auth flow (PeerClient) and the listener's check agree on method, path, query, body and address."""
    clock = FakeClock()
    request = httpx.Request("POST", "http://goqueue-1.goqueue-headless:8081/internal/v1/replica/fetch?x=1",
                            content=b"body")
    flow = SignedByBroker(BrokerSigner(2, PASSWORD, clock)).auth_flow(request)
    sent = next(flow)
    assert verifier(clock).verify(sent.headers[HEADER], "POST", PATH, b"body") == 2


async def _call(app: BrokerCredentialCheck, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, bytes]:
    """One request through the middleware as uvicorn delivers it; (status, body the app saw, response body)."""
    seen: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"body", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/internal/v1/replica/fetch", "query_string": b"x=1",
             "raw_path": b"/internal/v1/replica/fetch", "headers": headers, "client": ("10.0.0.9", 1234)}
    await app(scope, receive, send)
    status = sent[0]["status"]
    return status, seen.get("body", b""), b"".join(m.get("body", b"") for m in sent[1:])


def test_the_listener_runs_no_route_for_an_unsigned_request_and_the_whole_body_for_a_signed_one() -> None:
    clock = FakeClock()
    reached: list[bytes] = []

    async def application(scope: Any, receive: Any, send: Any) -> None:
        reached.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    refused: list[int] = []
    app = BrokerCredentialCheck(application, verifier(clock), lambda: refused.append(1))
    status, _, answer = asyncio.run(_call(app, []))
    assert (status, reached, refused) == (401, [], [1])
    assert b'"UNAUTHENTICATED"' in answer
    status, _, answer = asyncio.run(_call(app, [(HEADER.lower().encode(), signed(clock).encode())]))
    assert (status, reached, answer) == (200, [b"body"], b"ok")


def test_refusals_are_each_counted_but_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of forged requests cannot fill the log volume."""

    async def application(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("no route runs for an unsigned request")

    refused: list[int] = []
    app = BrokerCredentialCheck(application, verifier(FakeClock()), lambda: refused.append(1))
    with caplog.at_level("WARNING", logger="goqueue.api.http.broker_auth"):
        for _ in range(5):
            assert asyncio.run(_call(app, []))[0] == 401
    assert len(refused) == 5
    assert [r.getMessage() for r in caplog.records] == ["internal.request_refused"]
