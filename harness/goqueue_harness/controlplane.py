"""etcd, kube-apiserver and kube-controller-manager as local processes.

Why this shape: it is what controller-runtime's envtest runs, plus the
controller manager, because the operator relies on real controllers
(StatefulSet, garbage collector, PVC binder and expander, PDB status, namespace
deletion). Every server listens on 127.0.0.1 on free ports; everything lives in
one state directory (default ``~/.local/state/goqueue/controlplane``):

    pki/          CA, serving, service-account and admin keys (kept across restarts)
    etcd/         etcd data (removed by ``stop``)
    volumes/      host folders behind the PV pool (removed by ``stop``)
    kubelet/      the process-kubelet's pods, logs and DNS files
    logs/*.log    one log per daemon;  run/*.pid  one pid file per daemon
    endpoints.json ports in use;  kubeconfig  admin kubeconfig (cluster-admin)

``start`` reuses a healthy running control plane; ``stop`` works from any process
(it reads the pid files) and leaves no process or port behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from goqueue_harness import processes
from goqueue_harness.binaries import BinDir, locate_binaries
from goqueue_harness.kubeapi import ClientConfig, KubeClient, resource_path
from goqueue_harness.pki import Pki, ensure_pki
from goqueue_harness.storage import StorageController

SERVICE_CIDR = "10.0.0.0/24"
CLUSTER_NAME = "goqueue-local"
# The controllers the operator relies on, by their 1.36 names (--controllers
# accepts these canonical "-controller" names). Left out on purpose:
# node-lifecycle (would evict pods when the process-kubelet misses a heartbeat),
# node-ipam, endpoints/endpointslice (Endpoints reject loopback pod IPs), and
# the service-account *token* controller (pods get tokens through TokenRequest).
CONTROLLERS = (
    "statefulset-controller",
    "replicaset-controller",
    "deployment-controller",
    "job-controller",
    "garbage-collector-controller",
    "disruption-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-expander-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
)
DAEMONS = ("kube-controller-manager", "kube-apiserver", "etcd")  # stop order


def default_state_dir() -> Path:
    override = os.environ.get("GOQUEUE_CONTROLPLANE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "goqueue" / "controlplane"


class ControlPlaneError(RuntimeError):
    """A control-plane daemon failed to start or become healthy."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the daemon binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Endpoints:
    """Ports chosen at start, persisted so other processes find them."""

    etcd_client_port: int
    etcd_peer_port: int
    apiserver_port: int

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"


class ControlPlane:
    """The control plane rooted at one state directory."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.pki = Pki(self.state_dir / "pki")
        self.logs_dir = self.state_dir / "logs"
        self.run_dir = self.state_dir / "run"
        self.volumes_dir = self.state_dir / "volumes"
        self._endpoints_file = self.state_dir / "endpoints.json"

    # -- queries -------------------------------------------------------------------------
    def pid_file(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.logs_dir / f"{daemon}.log"

    def endpoints(self) -> Endpoints | None:
        try:
            return Endpoints(**json.loads(self._endpoints_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def client_config(self) -> ClientConfig:
        return ClientConfig.from_kubeconfig(self.kubeconfig)

    def is_running(self) -> bool:
        """All daemons alive and the API server answers /readyz."""
        endpoints = self.endpoints()
        if endpoints is None or not self.kubeconfig.is_file():
            return False
        if not all(processes.pid_file_alive(self.pid_file(d)) for d in DAEMONS):
            return False
        return self._apiserver_ready(endpoints)

    def status(self) -> dict[str, Any]:
        endpoints = self.endpoints()
        return {
            "state_dir": str(self.state_dir),
            "kubeconfig": str(self.kubeconfig),
            "server": endpoints.server if endpoints else None,
            "daemons": {d: processes.pid_file_alive(self.pid_file(d)) for d in DAEMONS},
            "ready": self.is_running(),
        }

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, bins: BinDir | None = None, pool_size: int = 20, pool_capacity: str = "200Gi") -> None:
        """Start everything (or reuse a healthy running control plane); return once usable."""
        if self.is_running():
            return
        self.stop()  # clear a half-dead previous run
        bins = bins or locate_binaries()
        # Private: it holds the cluster CA key, admin credentials and pods' ServiceAccount tokens and Secrets.
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        for d in (self.logs_dir, self.run_dir, self.volumes_dir):
            d.mkdir(parents=True, exist_ok=True)
        ensure_pki(self.pki.directory)
        endpoints = Endpoints(free_port(), free_port(), free_port())
        self._endpoints_file.write_text(json.dumps(endpoints.__dict__))
        self._start_etcd(bins, endpoints)
        self._start_apiserver(bins, endpoints)
        self._write_kubeconfig(endpoints)
        self._start_controller_manager(bins)
        asyncio.run(self._bootstrap(pool_size, pool_capacity))

    def stop(self, *, wipe: bool = True) -> None:
        """Stop every daemon; with ``wipe``, delete cluster data (keep the PKI)."""
        for daemon in DAEMONS:
            processes.stop_daemon(self.pid_file(daemon), grace_s=10.0)
        if wipe:
            for d in (self.state_dir / "etcd", self.volumes_dir):
                shutil.rmtree(d, ignore_errors=True)
            self._endpoints_file.unlink(missing_ok=True)

    # -- daemons -----------------------------------------------------------------------------
    def _spawn(self, daemon: str, argv: list[str]) -> processes.PidRecord:
        return processes.spawn_daemon(argv, pid_file=self.pid_file(daemon), log_file=self.log_file(daemon))

    def _start_etcd(self, bins: BinDir, ep: Endpoints) -> None:
        client = f"http://127.0.0.1:{ep.etcd_client_port}"
        peer = f"http://127.0.0.1:{ep.etcd_peer_port}"
        record = self._spawn("etcd", [
            str(bins["etcd"]), "--name=goqueue", f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=goqueue={peer}", "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # test data: speed over durability
            "--log-level=warn",
        ])
        self._await("etcd", record, lambda: _http_ok(f"{client}/health", None), timeout_s=30)

    def _start_apiserver(self, bins: BinDir, ep: Endpoints) -> None:
        p = self.pki
        record = self._spawn("kube-apiserver", [
            str(bins["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{ep.etcd_client_port}",
            "--bind-address=127.0.0.1", f"--secure-port={ep.apiserver_port}",
            "--advertise-address=127.0.0.1",  # without it, no default route means no start
            f"--tls-cert-file={p.serving_cert}", f"--tls-private-key-file={p.serving_key}",
            f"--client-ca-file={p.ca_cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.sa_public_key}",
            f"--service-account-signing-key-file={p.sa_private_key}",
            "--authorization-mode=RBAC",  # so the operator's RBAC is exercised
            "--allow-privileged=true",
            # The "kubernetes" Service's endpoints would be 127.0.0.1, which Endpoints
            # reject; nothing here uses them, so skip that reconciler and its log noise.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            f"--cert-dir={self.state_dir / 'apiserver-certs'}",
        ])
        self._await("kube-apiserver", record, lambda: self._apiserver_ready(ep), timeout_s=90)

    def _start_controller_manager(self, bins: BinDir) -> None:
        self._spawn("kube-controller-manager", [
            str(bins["kube-controller-manager"]),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false", "--secure-port=0",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--root-ca-file={self.pki.ca_cert}",
            f"--cluster-name={CLUSTER_NAME}",
        ])

    def _await(self, daemon: str, record: processes.PidRecord, ready: Any, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if processes.exited(record) is not None or not processes.is_alive(record):
                raise ControlPlaneError(f"{daemon} exited during start:\n{self._log_tail(daemon)}")
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{daemon} not ready after {timeout_s}s:\n{self._log_tail(daemon)}")
            time.sleep(0.2)

    def _log_tail(self, daemon: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file(daemon).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _apiserver_ready(self, ep: Endpoints) -> bool:
        p = self.pki
        return _http_ok(f"{ep.server}/readyz", (p.ca_cert, p.admin_cert, p.admin_key))

    def _write_kubeconfig(self, ep: Endpoints) -> None:
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CLUSTER_NAME, "cluster": {
                "server": ep.server, "certificate-authority": str(self.pki.ca_cert)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate": str(self.pki.admin_cert), "client-key": str(self.pki.admin_key)}}],
            "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": "admin"}}],
            "current-context": CLUSTER_NAME,
        }
        tmp = self.kubeconfig.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))  # JSON is valid YAML
        tmp.chmod(0o600)
        tmp.replace(self.kubeconfig)

    async def _bootstrap(self, pool_size: int, pool_capacity: str) -> None:
        """Storage objects, then wait for proof that the controller manager works."""
        async with KubeClient(self.client_config()) as client:
            await StorageController(client, self.volumes_dir, pool_size=pool_size,
                                    pool_capacity=pool_capacity).bootstrap()
            deadline = time.monotonic() + 60
            sa_path = resource_path("v1", "serviceaccounts", "default", "default")
            # The serviceaccount controller creating "default" shows the controller manager is up.
            while await client.get(sa_path) is None:
                if not processes.pid_file_alive(self.pid_file("kube-controller-manager")):
                    raise ControlPlaneError(
                        f"kube-controller-manager exited:\n{self._log_tail('kube-controller-manager')}")
                if time.monotonic() > deadline:
                    raise ControlPlaneError("kube-controller-manager created no default ServiceAccount in 60s")
                await asyncio.sleep(0.2)


def _http_ok(url: str, tls: tuple[Path, Path, Path] | None) -> bool:
    try:
        if tls is None:
            response = httpx.get(url, timeout=2.0)
        else:
            ca, cert, key = tls
            ctx = ClientConfig(url, ca, cert, key).ssl_context()
            response = httpx.get(url, timeout=2.0, verify=ctx)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
