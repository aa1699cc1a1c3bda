"""`goqueue-operator` as a real subprocess, authenticated as its own ServiceAccount (operator/deploy RBAC).

Why the ServiceAccount and not the admin kubeconfig: the tests then prove the least-privilege ClusterRole is
enough; a missing verb shows up as a 403 in the operator's log and a failing test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "operator" / "deploy"
# The Deployment itself is not applied: here the operator runs as a local process, which the tests can kill
# mid-step and restart (the chart install test and `make up` run it as a pod).
INSTALL = ["00-namespace.yaml", "10-kopf-peering.yaml", "20-rbac.yaml"]
NAMESPACE = "goqueue-system"
SERVICE_ACCOUNT = "goqueue-operator"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def install_operator_rbac(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=goqueue-tests",
            "-f", str(DEPLOY / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/clusterkopfpeerings.kopf.dev",
            "crd/kopfpeerings.kopf.dev")
    for name in INSTALL:
        kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=goqueue-tests",
                "-f", str(DEPLOY / name))


def service_account_kubeconfig(kubectl: Kubectl, admin_kubeconfig: Path, target: Path) -> Path:
    """A kubeconfig holding only a token of the operator's ServiceAccount (and the cluster's CA)."""
    token = kubectl("create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE, "--duration=4h").strip()
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    if "certificate-authority" in cluster:
        cluster["certificate-authority"] = str((admin_kubeconfig.parent / cluster["certificate-authority"]).resolve())
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": SERVICE_ACCOUNT}}],
    }
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o600)
    return target


@dataclass
class OperatorProcess:
    kubeconfig: Path
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self) -> OperatorProcess:
        binary = shutil.which("goqueue-operator", path=str(Path(sys.executable).parent)) or shutil.which(
            "goqueue-operator")
        assert binary, "goqueue-operator is not installed (pip install -e .)"
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "GOQUEUE_OPERATOR_METRICS_HOST": "127.0.0.1",
            "GOQUEUE_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "GOQUEUE_OPERATOR_CLUSTER_RESYNC_S": "2",
            "GOQUEUE_OPERATOR_DRIFT_INTERVAL_S": "2",
            "GOQUEUE_OPERATOR_RETRY_DELAY_S": "1",
            "GOQUEUE_OPERATOR_BROKER_TIMEOUT_S": "5",
            "GOQUEUE_OPERATOR_FINALIZER_TIMEOUT_S": "30",
            **self.env,
        }
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen([binary], env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            wait_until(self._healthy, 60, message="goqueue-operator /healthz")
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"goqueue-operator exited with {self.process.returncode}:\n{self.tail()}"
        try:
            return httpx.get(f"{self.metrics_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int | None:
        """SIGTERM, then wait (kopf stops its handlers); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: an operator crash at an arbitrary point."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def crash_and_restart(self) -> None:
        """SIGKILL, then a new operator process with the same settings and log (what a pod restart does)."""
        self.kill()
        self.start()

    def log_text(self, offset: int = 0) -> str:
        return self.log_path.read_bytes()[offset:].decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def metrics(self) -> str:
        return httpx.get(f"{self.metrics_url}/metrics", timeout=5).text

    def log_events(self, offset: int = 0) -> list[dict[str, Any]]:
        """The JSON log lines (the operator logs JSON when not on a terminal)."""
        events = []
        for line in self.log_text(offset).splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


def problems_in_log(text: str) -> list[str]:
    """Lines that show an unexpected error: tracebacks, and 403s (a missing RBAC permission)."""
    found = []
    for line in text.splitlines():
        if "Traceback" in line or "Forbidden" in line or '"status": 403' in line or "HTTP 403" in line:
            found.append(line[:2000])
    return found
