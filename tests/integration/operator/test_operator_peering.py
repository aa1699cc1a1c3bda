"""Two goqueue-operator replicas with one peering object: one works, the other stands by, and takes over when
the first dies (kopf peering; random priorities, because equal priorities freeze every replica)."""

from __future__ import annotations

import pytest
from operator_kube import apply, cluster_manifest, wait_condition
from operator_process import OperatorProcess

from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

PAUSING = "Pausing operations in favour of"


def test_a_standby_replica_takes_over_when_the_active_one_dies(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str,
) -> None:
    offset = operator.log_size()
    standby = OperatorProcess(operator.kubeconfig, operator.log_path.with_name("standby.log"),
                              env={"GOQUEUE_OPERATOR_LOG_LEVEL": "DEBUG"}).start()
    active: OperatorProcess | None = None
    try:
        wait_until(lambda: PAUSING in standby.log_text() or PAUSING in operator.log_text(offset),
                   60, message="one replica pauses in favour of the other")
        paused, active = (standby, operator) if PAUSING in standby.log_text() else (operator, standby)
        paused_offset = offset if paused is operator else 0
        assert "Possibly conflicting operators" not in standby.log_text()
        active.kill()  # the active replica dies: the standby must resume and do the work
        pausing_at = paused.log_text(paused_offset).index(PAUSING)
        wait_until(lambda: "Resuming operations after the pause" in paused.log_text(paused_offset)[pausing_at:], 90,
                   message="the standby resumes")
        apply(kubectl, kube_namespace, cluster_manifest(replicas=1))
        wait_condition(kubectl, kube_namespace, "goqueuecluster", "goqueue", "Ready", 240)
    finally:
        if active is operator:  # the session's operator died: the standby becomes it for the next tests
            operator.start()
        standby.stop()
