"""Two goqueue-operator replicas with one peering object: one works, the other stands by, and takes over when
the first dies (kopf peering; random priorities, because equal priorities freeze every replica)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from operator_kube import apply, cluster_manifest, wait_condition
from operator_process import OperatorProcess

from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

STREAM_PAUSED = "Pausing the watch-stream for goqueueclusters"
RESUMING = "Resuming operations after the pause"
PEERING = "goqueue-operator"  # the ClusterKopfPeering both replicas share (the operator's default peering name)
KEEPALIVE_S = 90  # kopf renews a peer's entry every 50-55 s (lifetime 60 s)


def active_keepalive(kubectl: Kubectl) -> datetime | None:
    """When a replica other than the standby (priority 0) last renewed its entry in the peering object."""
    status = json.loads(kubectl("get", "clusterkopfpeering", PEERING, "-o", "json")).get("status") or {}
    renewed = [datetime.fromisoformat(entry["lastseen"]) for entry in status.values()
               if entry and entry.get("priority") != 0 and entry.get("lastseen")]
    return max(renewed, default=None)


def test_a_standby_replica_takes_over_when_the_active_one_dies(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str,
) -> None:
    # Priority 0, below the session operator's random one: the standby must stand by. (kopf starts every replica
    # paused until it has read the peering, so a lower replica never logs "Pausing operations"; it just stays so.)
    standby = OperatorProcess(operator.kubeconfig, operator.log_path.with_name("standby.log"),
                              env={"GOQUEUE_OPERATOR_LOG_LEVEL": "DEBUG", "GOQUEUE_OPERATOR_PRIORITY": "0"}).start()
    try:
        wait_until(lambda: STREAM_PAUSED in standby.log_text(), 60, message="the standby starts paused")
        # It must still stand by after a peering round: the active replica renews its entry (a change every
        # replica re-evaluates the peers on), which is seen in the peering object, not guessed from a sleep.
        paused_at = active_keepalive(kubectl)
        assert paused_at is not None, "the active replica has no entry in the peering object"
        wait_until(lambda: (renewed := active_keepalive(kubectl)) is not None and renewed > paused_at, KEEPALIVE_S,
                   interval_s=1, message="a keep-alive of the active replica after the standby paused")
        assert RESUMING not in standby.log_text(), "the lower-priority replica went active beside the active one"
        assert "Possibly conflicting operators" not in standby.log_text()
        operator.kill()  # the active replica dies: the standby must resume and do the work
        wait_until(lambda: RESUMING in standby.log_text(), 120, message="the standby resumes")
        apply(kubectl, kube_namespace, cluster_manifest(replicas=1))
        wait_condition(kubectl, kube_namespace, "goqueuecluster", "goqueue", "Ready", 240)
    finally:
        standby.stop()
        if operator.process is None or operator.process.poll() is not None:
            operator.start()  # the session's operator comes back for the next tests
