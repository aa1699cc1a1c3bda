"""Consumers leave their group when they stop (issue 12), against a real broker: the CLI on a normal exit, Ctrl-C
and SIGTERM; the client libraries on close, on interpreter exit and on SIGTERM; and a consumer that dies without a
word is expired after its session timeout, which `group describe` announces.

Why it matters: `group reset-offset` (the runbook's procedure after stopping consumers) is refused while a group
has live members; a consumer that stopped but stayed a member blocked it for its whole session timeout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from broker_process import BrokerFactory, BrokerProcess

from goqueue.client.http import GoQueueClient
from goqueue.errors import GroupNotFound
from goqueue.models import ProduceRecord, TopicCreate
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

TOPIC = "leave-topic"
EXIT_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def topic(module_broker: BrokerProcess) -> str:
    with GoQueueClient(module_broker.url) as client:
        client.create_topic(TopicCreate(name=TOPIC, partitions=2))
        client.produce(TOPIC, [ProduceRecord(value=f"r{n}") for n in range(6)])
    return TOPIC


def env_for(broker: BrokerProcess) -> dict[str, str]:
    return {**os.environ, "GOQUEUE_SERVER": broker.url}


def members(broker: BrokerProcess, group: str) -> list[str]:
    with GoQueueClient(broker.url) as client:
        try:
            return [m.member_id for m in client.describe_group(group).members]
        except GroupNotFound:
            return []  # not created yet


def reset(broker: BrokerProcess, group: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["goqueue-cli", "group", "reset-offset", "--group", group, "--topic", TOPIC,
                           "--to-earliest"], env=env_for(broker), capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_a_reset_right_after_a_cli_consume_succeeds(module_broker: BrokerProcess, topic: str, mode: str) -> None:
    """The issue's report, as written: consume --max 3 --ack, then reset-offset at once was refused."""
    group = f"after-consume-{mode}"
    consumed = subprocess.run(["goqueue-cli", "consume", "--topic", topic, "--group", group, "--mode", mode,
                               "--from-beginning", "--max", "3", "--ack"], env=env_for(module_broker),
                              capture_output=True, text=True, timeout=60, check=False)
    assert consumed.returncode == 0, consumed.stderr
    assert "3 records acknowledged" in consumed.stderr
    assert members(module_broker, group) == []
    result = reset(module_broker, group)
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def sigint_as_from_a_terminal() -> Iterator[None]:
    """Start children with SIGINT at its default, as a terminal's foreground job has it. A shell without job control
    starts background commands with SIGINT ignored and children inherit that (Python then installs no
    KeyboardInterrupt handler): a suite started as `bash .ci/run &` timed out here on Ctrl-C, the CLI never told.
    A handler (not an ignore) in this process is reset to the default in a child."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(("stop", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_ctrl_c_and_sigterm_make_the_cli_leave(module_broker: BrokerProcess, topic: str, mode: str,
                                               stop: signal.Signals, exit_code: int) -> None:
    """Stopped mid long-poll: the broker's poll of that request runs on, and must not bring the member back."""
    group = f"stopped-{mode}-{stop.name.lower()}"
    with sigint_as_from_a_terminal(), subprocess.Popen(
            ["goqueue-cli", "consume", "--topic", topic, "--group", group, "--mode", mode, "--timeout", "120"],
            env=env_for(module_broker), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as consumer:
        try:
            wait_until(lambda: len(members(module_broker, group)) == 1, 30, message="the consumer joined")
            consumer.send_signal(stop)
            _, stderr = consumer.communicate(timeout=EXIT_TIMEOUT_S)
        finally:
            consumer.kill()
    assert consumer.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    assert members(module_broker, group) == []
    result = reset(module_broker, group)
    assert result.returncode == 0, result.stderr


LIBRARY_SCRIPT = """
import asyncio, os, signal, sys
from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.errors import GroupNotFound
from goqueue.models import ConsumeRequest

url, target, group, how = sys.argv[1:]
consume = ConsumeRequest(consumer_id="lib", topic="{topic}", wait_ms=0)

if how == "http-close":
    with GoQueueClient(url) as client:
        client.consume(group, consume)
elif how == "http-exit":  # never closed: the interpreter's exit leaves
    client = GoQueueClient(url)
    client.consume(group, consume)
elif how == "http-sigterm":
    client = GoQueueClient(url)
    client.consume(group, consume)
    print("member", flush=True)
    signal.pause()
elif how == "http-join-sigterm":
    client = GoQueueClient(url)
    client.join_group(group, ["{topic}"])
    print("member", flush=True)
    signal.pause()
else:
    async def main() -> None:
        async with GrpcClient(target) as client:
            await client.consume(group, consume)
            if how == "grpc-sigterm":
                print("member", flush=True)
                await asyncio.sleep(600)
    asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["http-close", "http-exit", "http-sigterm", "http-join-sigterm", "grpc-close",
                                 "grpc-sigterm"])
def test_the_client_libraries_leave_on_close_exit_and_sigterm(module_broker: BrokerProcess, topic: str,
                                                              how: str) -> None:
    group = f"library-{how}"
    script = textwrap.dedent(LIBRARY_SCRIPT).replace("{topic}", topic)
    with subprocess.Popen([sys.executable, "-c", script, module_broker.url, module_broker.grpc_target, group, how],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            if how.endswith("sigterm"):
                assert process.stdout is not None
                assert process.stdout.readline() == "member\n"
                assert len(members(module_broker, group)) == 1
                process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=EXIT_TIMEOUT_S)
        finally:
            process.kill()
    # SIGTERM still ends the process as SIGTERM does (the hook leaves first); the others exit normally
    assert process.returncode == (-signal.SIGTERM if how.endswith("sigterm") else 0), stderr
    assert members(module_broker, group) == []


def test_a_member_that_dies_expires_after_its_session_and_describe_says_when(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_CONSUMERS_SESSIONTIMEOUT": "3s", "GOQUEUE_CONSUMERS_EXPIRYINTERVAL": "0.2s"})
    with GoQueueClient(broker.url) as client:
        client.create_topic(TopicCreate(name=TOPIC, partitions=1))
    with subprocess.Popen(["goqueue-cli", "consume", "--topic", TOPIC, "--group", "dies", "--timeout", "120"],
                          env=env_for(broker), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as consumer:
        try:
            wait_until(lambda: len(members(broker, "dies")) == 1, 30, message="the consumer joined")
        finally:
            consumer.kill()  # no chance to leave
    described = subprocess.run(["goqueue-cli", "-o", "json", "group", "describe", "dies"], env=env_for(broker),
                               capture_output=True, text=True, timeout=60, check=True)
    member = json.loads(described.stdout)["members"][0]
    assert member["expiresAtMs"] - member["lastHeartbeatMs"] == 3000
    table = subprocess.run(["goqueue-cli", "group", "describe", "dies"], env=env_for(broker), capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert "EXPIRES" in table
    wait_until(lambda: members(broker, "dies") == [], 30, message="the dead member expired")
    result = reset(broker, "dies")
    assert result.returncode == 0, result.stderr
