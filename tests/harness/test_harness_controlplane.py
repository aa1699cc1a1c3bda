"""The control plane starts, serves kubectl at the pinned version, and stops without leftovers."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from goqueue_harness import processes
from goqueue_harness.binaries import BinDir, Versions
from goqueue_harness.controlplane import DAEMONS, ControlPlane
from goqueue_harness.pytest_plugin import Kubectl

pytestmark = pytest.mark.integration


def test_kubectl_lists_the_system_namespaces(kubectl: Kubectl) -> None:
    names = kubectl("get", "namespaces", "-o", "name").split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(names)


def test_server_reports_the_pinned_kubernetes_version(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == Versions.load().kubernetes


def test_default_storage_class_allows_expansion(kubectl: Kubectl) -> None:
    sc = json.loads(kubectl("get", "storageclass", "standard", "-o", "json"))
    assert sc["allowVolumeExpansion"] is True
    assert sc["volumeBindingMode"] == "Immediate"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


def test_rbac_is_enforced_for_non_admins(kubectl: Kubectl) -> None:
    answer = kubectl("auth", "can-i", "list", "pods", "--as=system:serviceaccount:default:default", check=False)
    assert answer.strip() == "no"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_second_control_plane_starts_quickly_and_stops_without_leftovers(
    tmp_path: Path, k8s_binaries: BinDir
) -> None:
    cp = ControlPlane(tmp_path / "cp")
    started = time.monotonic()
    try:
        cp.start(bins=k8s_binaries, pool_size=2)
        assert time.monotonic() - started < 60
        assert cp.is_running()
        endpoints = cp.endpoints()
        assert endpoints is not None
        records = [processes.read_pid_file(cp.pid_file(d)) for d in DAEMONS]
    finally:
        ControlPlane(tmp_path / "cp").stop()  # a fresh object: stop needs only the files on disk
    assert all(r is not None and not processes.is_alive(r) for r in records)
    ports = (endpoints.etcd_client_port, endpoints.etcd_peer_port, endpoints.apiserver_port)
    assert all(_port_free(p) for p in ports)
    assert not cp.is_running()
