"""A one-node kind cluster for `make up` and the e2e kind tier: node image, config, create, load, delete.

Why one module: `make up`, `make down` and the e2e backend create and remove the same kind of cluster the same way.

* **Node image.** `GOQUEUE_KIND_NODE_IMAGE` if set; else the public `kindest/node:<pinned version>` when a registry
  answers (a laptop); else one built here from Debian packages and Go modules (harness/kind/build_node_image.sh,
  cached by content). Either way `kind create cluster` pulls nothing more.
* **Config.** One control-plane node; kube-proxy in nftables mode (no iptables legacy/nft guessing in the
  kube-proxy image); on a cgroup v1 host the kubelet's `failCgroupV1: false` (Kubernetes 1.35+ refuses v1
  otherwise); the expandable volumes' directory mounted into the node (goqueue_harness.kind_storage).
* **Docker.** goqueue_harness.docker starts a daemon when none answers; `make down` stops only one it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from goqueue_harness.binaries import Versions
from goqueue_harness.docker import ensure_docker
from goqueue_harness.images import can_pull
from goqueue_harness.processes import pid_file_alive, spawn_daemon, stop_daemon

KIND_DIR = Path(__file__).resolve().parents[1] / "kind"
# Where the harness's expandable volumes live inside the node (a bind mount of a host directory).
NODE_VOLUMES_DIR = "/var/lib/goqueue-volumes"
CREATE_TIMEOUT_S = 900


class KindError(RuntimeError):
    """kind (or what it needs) failed; one line saying what, then the tool's last lines."""


def _run(argv: list[str], *, timeout_s: float = CREATE_TIMEOUT_S, input_text: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False,
                              input=input_text)
    except subprocess.TimeoutExpired as exc:
        raise KindError(f"{' '.join(argv[:4])} did not finish within {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise KindError(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def kind_binary() -> Path:
    """kind from build_binaries.sh's cache (built from its Go module like the other binaries)."""
    out = _run(["bash", str(KIND_DIR.parent / "build_binaries.sh"), "kind"], timeout_s=3600)
    node_dir = Path(out.strip().splitlines()[-1])
    return node_dir.parent / "kind"


def cgroup_v1() -> bool:
    return not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def node_image() -> str:
    override = os.environ.get("GOQUEUE_KIND_NODE_IMAGE")
    if override:
        return override
    public = f"kindest/node:{Versions.load().kubernetes}"
    if can_pull(public):
        return public
    out = _run(["bash", str(KIND_DIR / "build_node_image.sh")], timeout_s=3600)
    return out.strip().splitlines()[-1]


def cluster_config(volumes_dir: Path) -> dict[str, object]:
    patches = []
    if cgroup_v1():
        patches.append("kind: KubeletConfiguration\nfailCgroupV1: false\n")
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"kubeProxyMode": "nftables"},
        "kubeadmConfigPatches": patches,
        "nodes": [{"role": "control-plane",
                   "extraMounts": [{"hostPath": str(volumes_dir), "containerPath": NODE_VOLUMES_DIR}]}],
    }


def kind_state_dir(name: str) -> Path:
    """Per-cluster state (kubeconfig, volumes, the storage daemon): keyed by the cluster's name, not by who made
    it, so `make up` after `make up`, or a test session reusing a kept cluster, finds the same daemon and volumes."""
    root = Path(os.environ.get("GOQUEUE_KIND_STATE", Path.home() / ".local" / "state" / "goqueue" / "kind"))
    return root / name


@dataclass
class KindCluster:
    """A named kind cluster; its kubeconfig and volumes live in kind_state_dir(name)."""

    name: str

    def __post_init__(self) -> None:
        self.kind = str(kind_binary())
        self.workdir = kind_state_dir(self.name)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def volumes_dir(self) -> Path:
        return self.workdir / "volumes"

    @property
    def node_container(self) -> str:
        return f"{self.name}-control-plane"

    def exists(self) -> bool:
        return self.name in _run([self.kind, "get", "clusters"], timeout_s=60).split()

    def create(self) -> bool:
        """Create the cluster unless it exists (then reuse it); write its kubeconfig. True when created."""
        ensure_docker()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        created = False
        if not self.exists():
            image = node_image()
            config = self.workdir / "kind-config.yaml"
            config.write_text(yaml.safe_dump(cluster_config(self.volumes_dir), sort_keys=False))
            try:
                _run([self.kind, "create", "cluster", "--name", self.name, "--image", image,
                      f"--config={config}", "--wait=300s", f"--kubeconfig={self.kubeconfig}"])
            except KindError:
                # A half-made cluster would be "reused" next time: remove it so a retry starts clean.
                subprocess.run([self.kind, "delete", "cluster", "--name", self.name], capture_output=True,
                               timeout=300, check=False)
                raise
            created = True
        self.kubeconfig.touch(mode=0o600)
        self.kubeconfig.write_text(_run([self.kind, "get", "kubeconfig", "--name", self.name], timeout_s=60))
        self._start_storage()
        return created

    # -- the expandable StorageClass (goqueue_harness.kind_storage) ---------------------------------------------
    @property
    def _storage_pid_file(self) -> Path:
        return self.workdir / "kind-storage.pid"

    def _start_storage(self) -> None:
        if pid_file_alive(self._storage_pid_file):
            return
        spawn_daemon([sys.executable, "-m", "goqueue_harness", "kind-storage", f"--kubeconfig={self.kubeconfig}",
                      f"--volumes-dir={self.volumes_dir}", f"--node-volumes-dir={NODE_VOLUMES_DIR}"],
                     pid_file=self._storage_pid_file, log_file=self.workdir / "kind-storage.log",
                     env={**os.environ, "PYTHONPATH": str(KIND_DIR.parent)})

    def stop_storage(self) -> None:
        stop_daemon(self._storage_pid_file)

    def load(self, *tags: str) -> None:
        """`kind load docker-image` (skips what the node already has with the same id)."""
        _run([self.kind, "load", "docker-image", "--name", self.name, *tags])

    def delete(self) -> bool:
        """Delete the cluster and its volumes; False when there was none."""
        self.stop_storage()
        if not self.exists():
            return False
        _run([self.kind, "delete", "cluster", "--name", self.name], timeout_s=300)
        shutil.rmtree(self.volumes_dir, ignore_errors=True)
        return True
