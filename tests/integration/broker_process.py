"""A real `goqueue-broker` process on loopback, for integration tests (and anything else that needs one).

Why a subprocess and not an in-process `BrokerServer`: the tests then exercise exactly what an operator runs
(config from the environment, signal handling, exit codes), and a test can SIGKILL it to check durability.

    broker = BrokerProcess(tmp_path / "b0")
    broker.start()                    # waits for /readyz
    ... broker.url, broker.grpc_target ...
    assert broker.stop() == 0         # SIGTERM, a clean exit is 0
    broker.start()                    # same ports and directories: a restart
    broker.kill()                     # SIGKILL, no shutdown at all

Ports are chosen free on 127.0.0.1 when the object is made and kept across restarts. Output goes to
`<root>/broker.log` (appended across restarts), which `log_text()` returns for assertions and failure messages.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_CHARS = 4000


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; there is a small window before the broker binds)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_executable() -> str:
    """The `goqueue-broker` console script of this environment; fails loudly when it is not installed."""
    beside_python = Path(sys.executable).with_name("goqueue-broker")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("goqueue-broker")
    if found is None:
        raise RuntimeError("goqueue-broker is not installed: run `pip install -e '.[dev]'`")
    return found


class BrokerNotReady(RuntimeError):
    """The broker exited or did not answer /readyz in time; the message ends with its log tail."""


class BrokerProcess:
    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
        ports: tuple[int, int, int, int] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        """`root` holds data/, wal/ and broker.log; `env` adds or overrides GOQUEUE_* settings. `ports` (HTTP, gRPC,
        Raft, internal) and `wrapper` (e.g. `ip netns exec NS`) serve brokers run inside a network namespace."""
        self.root = root
        self.host = host
        self.port, self.grpc_port, self.raft_port, self.internal_port = ports or _distinct_free_ports(host, 4)
        self.wrapper = list(wrapper)
        self.data_dir = root / "data"
        self.wal_dir = root / "wal"
        self.log_path = root / "broker.log"
        self.config_file = config_file
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------------------------

    def _scheme(self, listener: str) -> str:
        """https where the broker's settings (GOQUEUE_TLS_*) put TLS on `listener`."""
        if "GOQUEUE_TLS_CERTFILE" not in self.extra_env:
            return "http"
        listeners = self.extra_env.get("GOQUEUE_TLS_LISTENERS", "http,grpc,internal").split(",")
        return "https" if listener in listeners else "http"

    @property
    def ca_file(self) -> str | None:
        """The CA bundle its TLS listeners are verified with (GOQUEUE_TLS_CAFILE), when it has one."""
        return self.extra_env.get("GOQUEUE_TLS_CAFILE")

    @property
    def url(self) -> str:
        return f"{self._scheme('http')}://{self.host}:{self.port}"

    @property
    def internal_url(self) -> str:
        """The broker-to-broker listener (every request must carry a broker credential)."""
        return f"{self._scheme('internal')}://{self.host}:{self.internal_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the broker is not running"
        return self.process.pid

    def environment(self) -> dict[str, str]:
        """The variables the broker is started with: ours, then the caller's overrides."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("GOQUEUE_")}
        env.update({
            "GOQUEUE_BROKER_HOST": self.host,
            "GOQUEUE_BROKER_PORT": str(self.port),
            "GOQUEUE_BROKER_GRPCPORT": str(self.grpc_port),
            "GOQUEUE_BROKER_RAFTPORT": str(self.raft_port),
            "GOQUEUE_BROKER_INTERNALPORT": str(self.internal_port),
            "GOQUEUE_STORAGE_DATADIR": str(self.data_dir),
            "GOQUEUE_STORAGE_WALDIR": str(self.wal_dir),
            "GOQUEUE_LOG_FORMAT": "json",
            "GOQUEUE_SECURITY_ALLOWANONYMOUS": "true",  # explicit: tests about security turn it off (extra_env)
        })
        env.update(self.extra_env)
        return env

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = READY_TIMEOUT_S, wait_ready: bool = True) -> BrokerProcess:
        """Start the process (again, after stop or kill) and wait until /readyz answers 200.

        A broker that does not become ready is killed (and its log closed) before the error propagates: a fixture
        that fails while starting it has no teardown, and must leave no process behind."""
        assert not self.running, "the broker is already running"
        self.root.mkdir(parents=True, exist_ok=True)
        command = [*self.wrapper, broker_executable(),
                   *(["--config", str(self.config_file)] if self.config_file else [])]
        self._log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(command, env=self.environment(), stdout=self._log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if wait_ready:
                self.wait_ready(timeout_s)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
        with httpx.Client(timeout=1.0, verify=verify) as http:
            while True:
                if self.process is None or self.process.poll() is not None:
                    raise BrokerNotReady(f"goqueue-broker exited with {self.returncode} during start-up"
                                         f"{self._tail()}")
                try:
                    if http.get(self.url + "/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                if time.monotonic() >= deadline:
                    raise BrokerNotReady(f"goqueue-broker not ready after {timeout_s:.0f}s{self._tail()}")
                time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait for a graceful exit; returns the exit code (0 when clean). Kills it after `timeout_s`."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self._close_log()
                raise RuntimeError(
                    f"goqueue-broker ignored SIGTERM for {timeout_s:.0f}s; killed{self._tail()}") from None
        self._close_log()
        return self.process.returncode

    def kill(self) -> int:
        """SIGKILL: no shutdown, no flush; what a crash or an OOM kill leaves behind."""
        if self.process is None:
            self._close_log()
            return 0
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()
        return self.process.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _tail(self) -> str:
        return f"\n--- {self.log_path} (tail) ---\n{self.log_text()[-LOG_TAIL_CHARS:]}"

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> BrokerProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.running:
            self.stop()
        self._close_log()


def _distinct_free_ports(host: str, count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports


# What the `broker_factory` fixture returns: start a broker named `name` with extra GOQUEUE_* settings.
BrokerFactory = Callable[..., BrokerProcess]
