"""The Node object the process-kubelet registers and keeps Ready.

Why: pods are bound to a Node, and the API server, the StatefulSet controller
and ``kubectl`` expect it to exist with capacity and a Ready condition. The
node-lifecycle controller is not run, so a missed heartbeat evicts nothing; the
heartbeat exists so ``kubectl get nodes`` tells the truth.
"""

from __future__ import annotations

import contextlib
import os
import platform

from goqueue_harness.kubeapi import JSON, Conflict, KubeClient, resource_path
from goqueue_harness.kubelet.container import now_rfc3339

KUBELET_VERSION = "v1.36.3-goqueue-process-kubelet"


def _memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def node_object(name: str) -> JSON:
    arch = arch_name()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "node-role.kubernetes.io/process-kubelet": "",
        }},
        "spec": {},
    }


def node_status(name: str, host_ip: str, *, ready: bool, message: str) -> JSON:
    capacity = {
        "cpu": str(os.cpu_count() or 1), "memory": str(_memory_bytes()), "pods": "110",
        "ephemeral-storage": str(os.statvfs("/").f_frsize * os.statvfs("/").f_blocks),
    }
    now = now_rfc3339()
    return {"status": {
        "capacity": capacity, "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": host_ip}, {"type": "Hostname", "address": name}],
        "conditions": [{
            "type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady", "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": arch_name(), "containerRuntimeVersion": "process://local",
            "kernelVersion": platform.release(), "osImage": "local processes",
            "machineID": "", "systemUUID": "", "bootID": "",
        },
    }}


def arch_name() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


async def register_node(client: KubeClient, name: str, host_ip: str) -> None:
    with contextlib.suppress(Conflict):
        await client.create(resource_path("v1", "nodes"), node_object(name))
    await report_node(client, name, host_ip, ready=True)


async def report_node(client: KubeClient, name: str, host_ip: str, *, ready: bool) -> None:
    message = "process-kubelet is posting ready status" if ready else "process-kubelet stopped"
    await client.patch(resource_path("v1", "nodes", name=name, subresource="status"),
                       node_status(name, host_ip, ready=ready, message=message))
