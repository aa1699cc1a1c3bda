"""`HttpBrokerAdmin` reads the broker's admin API through the client and the broker's own answer models: each
answer becomes the CheckResult the roller, drain and scaling act on, and nothing but an explicit yes is OK.

The broker is an `httpx.MockTransport` speaking the JSON the admin routes answer (tests/integration/test_cluster.py
asks the real routes the same questions)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from goqueue.client.http import GoQueueClient
from goqueue_operator.brokers import CheckResult, CheckStatus, HttpBrokerAdmin

pytestmark = pytest.mark.unit

ADMIN = "/v1/admin/cluster"
NO_ROUTE = (404, {"error": {"code": "NOT_FOUND", "message": "Not Found", "retriable": False}})


def _admin(answers: dict[str, tuple[int, Any]]) -> HttpBrokerAdmin:
    """An admin whose broker answers `answers[path]` (status, JSON body); any other path is the router's 404."""
    def handle(request: httpx.Request) -> httpx.Response:
        status, body = answers.get(request.url.path, NO_ROUTE)
        return httpx.Response(status, content=body if isinstance(body, bytes) else json.dumps(body).encode())

    def client(url: str, timeout_s: float) -> GoQueueClient:
        return GoQueueClient(url, timeout_s=timeout_s, transport=httpx.MockTransport(handle), retries=0)

    return HttpBrokerAdmin("http://goqueue-0:8080", client_factory=client)


def _ask(answers: dict[str, tuple[int, Any]], question: Callable[[HttpBrokerAdmin], Any]) -> CheckResult:
    admin = _admin(answers)
    try:
        result: CheckResult = asyncio.run(question(admin))
    finally:
        admin.close()
    return result


@pytest.mark.parametrize(("path", "yes", "no", "question"), [
    ("/brokers/1/pre-restart-check", {"brokerId": 1, "safe": True, "reasons": []},
     {"brokerId": 1, "safe": False, "reasons": ["orders/0: ISR would drop below 2"]},
     lambda admin: admin.pre_restart_check(1)),
    ("/brokers/1/caught-up", {"brokerId": 1, "caughtUp": True, "reasons": []},
     {"brokerId": 1, "caughtUp": False, "reasons": ["orders/0: ISR would drop below 2"]},
     lambda admin: admin.caught_up(1)),
    ("/brokers/1/transfer-leadership", {"brokerId": 1, "done": True, "reasons": []},
     {"brokerId": 1, "done": False, "reasons": ["orders/0: ISR would drop below 2"]},
     lambda admin: admin.transfer_leadership(1)),
    ("/rebalance", {"accepted": True, "moved": 2, "reasons": []},
     {"accepted": False, "moved": 0, "reasons": ["orders/0: ISR would drop below 2"]},
     lambda admin: admin.rebalance()),
], ids=["pre-restart-check", "caught-up", "transfer-leadership", "rebalance"])
def test_a_yes_passes_and_a_no_fails_with_the_brokers_reasons(
        path: str, yes: dict[str, Any], no: dict[str, Any], question: Callable[[HttpBrokerAdmin], Any]) -> None:
    assert _ask({ADMIN + path: (200, yes)}, question) == CheckResult.passed()
    assert _ask({ADMIN + path: (200, no)}, question) == CheckResult.failed("orders/0: ISR would drop below 2")


def test_a_broker_may_leave_once_it_holds_no_replica() -> None:
    path = f"{ADMIN}/brokers/2/replicas"
    assert _ask({path: (200, {"brokerId": 2, "replicas": 0, "leaders": 0})},
                lambda admin: admin.held_replicas(2)).ok
    followers = _ask({path: (200, {"brokerId": 2, "replicas": 3, "leaders": 0})}, lambda admin: admin.held_replicas(2))
    assert followers == CheckResult.failed("broker 2 holds 3 partition replicas (0 as leader)")


def test_a_drain_is_done_once_nothing_is_left() -> None:
    path = f"{ADMIN}/brokers/2/drain"
    assert _ask({path: (200, {"brokerId": 2, "done": True, "replicas": 0, "reasons": []})},
                lambda admin: admin.drain(2)).ok
    moving = _ask({path: (200, {"brokerId": 2, "done": False, "replicas": 4, "reasons": ["call again"]})},
                  lambda admin: admin.drain(2))
    assert moving == CheckResult.failed("broker 2 still holds 4 replicas", "call again")


def test_fields_a_newer_broker_added_are_ignored() -> None:
    answer = {"brokerId": 1, "safe": True, "reasons": [], "addedLater": {"nested": 1}}
    assert _ask({f"{ADMIN}/brokers/1/pre-restart-check": (200, answer)}, lambda admin: admin.pre_restart_check(1)).ok


def test_a_missing_endpoint_or_a_malformed_answer_is_unavailable_never_ok() -> None:
    missing = _ask({}, lambda admin: admin.pre_restart_check(1))
    assert missing == CheckResult.unavailable(
        f"the broker does not implement GET {ADMIN}/brokers/1/pre-restart-check yet (HTTP 404)")

    wrong_type = _ask({f"{ADMIN}/brokers/1/caught-up": (200, {"brokerId": 1, "caughtUp": "maybe"})},
                      lambda admin: admin.caught_up(1))
    assert wrong_type.status is CheckStatus.UNAVAILABLE
    assert wrong_type.summary.startswith(f"GET {ADMIN}/brokers/1/caught-up answered something unexpected")

    not_json = _ask({f"{ADMIN}/rebalance": (200, b"<html>proxy error</html>")}, lambda admin: admin.rebalance())
    assert not_json.status is CheckStatus.UNAVAILABLE
