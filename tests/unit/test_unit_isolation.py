"""The guard behind the `unit` marker (tests/unit_isolation.py) catches what it promises: a socket bound or
connected, a host name resolved, a subprocess or a shell command started, also from a thread the test starts; and it
leaves alone a socketpair (asyncio's self-pipe) and threads that were running before it was armed.

Each check arms a guard of its own inside this test's (the guards nest), so what it catches is recorded there and
not held against this test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Callable

import pytest
from unit_isolation import UnitIsolationError, unit_isolation

pytestmark = pytest.mark.unit


def bind() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


def connect() -> None:
    with socket.socket() as sock:
        sock.connect(("127.0.0.1", 9))


def resolve() -> None:
    socket.getaddrinfo("localhost", 80)


def start_process() -> None:
    subprocess.run(["true"], check=False)


def shell() -> None:
    os.system("true")


@pytest.mark.parametrize("forbidden", [bind, connect, resolve, start_process, shell], ids=lambda f: f.__name__)
def test_the_guard_refuses_network_and_processes(forbidden: Callable[[], None]) -> None:
    with unit_isolation() as violations, pytest.raises(UnitIsolationError, match="unit tests use no network"):
        forbidden()
    assert len(violations) == 1


def test_a_swallowed_refusal_is_still_recorded() -> None:
    with unit_isolation() as violations, contextlib.suppress(Exception):  # a library that hides connect errors
        connect()
    assert len(violations) == 1
    assert "connected a socket" in violations[0]


def test_a_thread_the_test_starts_is_guarded_too() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            bind()
        except UnitIsolationError as exc:
            errors.append(exc)

    with unit_isolation() as violations:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert len(errors) == 1
    assert len(violations) == 1


def test_threads_running_before_it_was_armed_and_socketpairs_are_left_alone() -> None:
    go, done = threading.Event(), threading.Event()
    outcome: list[str] = []

    def background() -> None:
        go.wait(10)
        try:
            bind()
            outcome.append("bound")
        except UnitIsolationError:
            outcome.append("refused")
        done.set()

    before = threading.Thread(target=background)
    before.start()
    with unit_isolation() as violations:
        go.set()
        assert done.wait(10)
        left, right = socket.socketpair()
        left.close()
        right.close()
        asyncio.run(asyncio.sleep(0))  # an event loop (its self-pipe) is fine
    before.join()
    assert outcome == ["bound"]
    assert violations == []
