"""Fixtures that start real `goqueue-broker` processes on loopback (see broker_process.py).

* `broker` — a fresh broker per test (its own ports and directories).
* `broker_factory` — start several, or with settings of your own: `broker_factory(env={"GOQUEUE_STORAGE_FSYNC":
  "never"})`.
* `module_broker` — one broker shared by all tests of a module, for tests that only need distinct topic names;
  it saves the second or so a broker takes to start.

Every broker still running at teardown is stopped with SIGTERM and must exit 0 with no traceback in its log: a
shutdown that hangs, crashes or logs a bug fails the test that caused it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_process import BrokerFactory, BrokerProcess
from grpc_loops import GrpcTolerantLoop


def finish(*brokers: BrokerProcess) -> None:
    """Stop every broker still running, then assert each exited 0 and logged no traceback."""
    problems: list[str] = []
    for broker in brokers:
        was_running = broker.running
        code = broker.stop()
        log = broker.log_text()
        if was_running and code != 0:
            problems.append(f"{broker.root.name}: goqueue-broker exited with {code} on SIGTERM:\n{log[-4000:]}")
        elif "Traceback" in log:
            problems.append(f"{broker.root.name}: the broker logged a traceback:\n{log[-4000:]}")
    assert not problems, "\n\n".join(problems)


def _factory(root: Path, started: list[BrokerProcess]) -> BrokerFactory:
    def start(name: str = "broker", env: Mapping[str, str] | None = None, wait_ready: bool = True) -> BrokerProcess:
        broker = BrokerProcess(root / f"{name}-{len(started)}", env=env)
        started.append(broker)
        return broker.start(wait_ready=wait_ready)

    return start


@pytest.fixture(scope="module")
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """`@pytest.mark.anyio` tests run on asyncio only (grpc.aio and the broker are asyncio; trio is installed), on
    loops that ignore a completion of a grpc.aio call made on an earlier, closed loop (`grpc_loops.py`)."""
    return "asyncio", {"loop_factory": GrpcTolerantLoop}


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[BrokerFactory]:
    started: list[BrokerProcess] = []
    yield _factory(tmp_path, started)
    finish(*started)


@pytest.fixture
def broker(broker_factory: BrokerFactory) -> BrokerProcess:
    return broker_factory()


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path_factory.mktemp("module-broker")).start()
    yield broker
    finish(broker)


@pytest.fixture(scope="module")
def fuzz_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker for the fuzz tests (HTTP and gRPC): a topic "fuzz" of 2 partitions with a record, a shared group
    "fuzz" on it, and long-polls cut to 50 ms so generated waits return at once."""
    broker = BrokerProcess(tmp_path_factory.mktemp("fuzz-broker"), env={"GOQUEUE_LIMITS_MAXWAIT": "50ms"}).start()
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        http.post("/v1/topics", json={"name": "fuzz", "partitions": 2}).raise_for_status()
        http.post("/v1/topics/fuzz/records", json={"records": [{"key": "k", "value": "v"}]}).raise_for_status()
        http.put("/v1/groups/fuzz", json={"mode": "shared", "topics": ["fuzz"]}).raise_for_status()
    yield broker
    finish(broker)
