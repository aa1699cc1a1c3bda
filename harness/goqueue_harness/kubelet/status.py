"""A pod's ``status`` computed from its containers' observed state (pure).

Why pure: phase and condition rules (Ready needs every container ready and every
readiness gate true; phase Succeeded/Failed only when nothing will restart)
are what the StatefulSet controller and the operator read; they are tested
without processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from goqueue_harness.kubeapi import JSON
from goqueue_harness.kubelet.container import ContainerRecord

# The conditions the kubelet owns; others (readiness gates, DisruptionTarget) are preserved.
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled")


@dataclass(frozen=True)
class PodObservation:
    """What the pod worker knows at one instant."""

    pod_ip: str | None
    host_ip: str
    start_time: str
    init_done: bool
    init: Sequence[ContainerRecord]
    main: Sequence[ContainerRecord]
    restart_policy: str
    terminating: bool = False


def _condition(kind: str, ok: bool, since: str, previous: Sequence[JSON], reason: str = "") -> JSON:
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    changed_at = old["lastTransitionTime"] if old and old.get("status") == status and old.get(
        "lastTransitionTime") else since
    cond: JSON = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": changed_at}
    if reason and not ok:
        cond["reason"] = reason
    return cond


def phase_of(obs: PodObservation) -> str:
    if not obs.init_done:
        failed_init = any(r.terminated and r.terminated.get("exitCode") != 0 for r in obs.init)
        return "Failed" if failed_init and obs.restart_policy == "Never" else "Pending"
    if any("running" in r.state for r in obs.main):
        return "Running"
    if obs.main and all(r.terminated for r in obs.main):
        if all((r.terminated or {}).get("exitCode") == 0 for r in obs.main):
            return "Succeeded"
        return "Failed"
    if any(r.restart_count > 0 or r.last_state for r in obs.main):
        return "Running"  # between restarts (CrashLoopBackOff) a pod stays Running
    return "Pending"


def pod_status(pod: JSON, obs: PodObservation, now: str) -> JSON:
    previous = pod.get("status", {}).get("conditions") or []
    containers_ready = bool(obs.main) and all(r.ready for r in obs.main) and not obs.terminating
    gates = [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]
    gates_ok = all(any(c.get("type") == g and c.get("status") == "True" for c in previous) for g in gates)
    not_ready = "ContainersNotReady" if obs.init_done else "PodInitializing"
    conditions = [
        _condition("PodReadyToStartContainers", obs.pod_ip is not None, now, previous),
        _condition("Initialized", obs.init_done, now, previous, "ContainersNotInitialized"),
        _condition("ContainersReady", containers_ready, now, previous, not_ready),
        _condition("Ready", containers_ready and gates_ok,
                   now, previous, not_ready if not containers_ready else "ReadinessGatesNotReady"),
        _condition("PodScheduled", True, now, previous),
    ]
    conditions += [c for c in previous if c.get("type") not in KUBELET_CONDITIONS]
    status: JSON = {
        "phase": phase_of(obs),
        "conditions": conditions,
        "hostIP": obs.host_ip,
        "hostIPs": [{"ip": obs.host_ip}],
        "startTime": obs.start_time,
        "containerStatuses": [r.status() for r in obs.main],
    }
    if obs.init:
        status["initContainerStatuses"] = [r.status() for r in obs.init]
    if obs.pod_ip is not None:
        status["podIP"] = obs.pod_ip
        status["podIPs"] = [{"ip": obs.pod_ip}]
    return status
