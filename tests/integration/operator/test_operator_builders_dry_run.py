"""Every child manifest the builders produce is accepted by the real API server (`kubectl apply --dry-run=server`).

Field-by-field unit tests check what we meant; this checks that Kubernetes agrees it is valid (types, immutable
fields, enum values, probe and affinity shapes) for the default spec and for one with every option set.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from goqueue_harness.pytest_plugin import Kubectl
from goqueue_operator.resources.children import OPTIONAL_APIS, build_cluster_children
from goqueue_operator.views import ClusterView

pytestmark = pytest.mark.integration

FULL_SPEC: dict[str, Any] = {
    "replicas": 5, "version": "0.2.0", "imagePullPolicy": "Always", "imagePullSecrets": ["registry"],
    "storage": {"size": "20Gi", "storageClassName": "standard"},
    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi", "cpu": 2}},
    "config": {"retention.maxAge": "72h", "storage.fsync": "interval"},
    "network": {"bind": "PodIP"},
    "networkPolicy": {"clientNamespaces": ["apps", "batch"], "metricsNamespaces": ["observability"]},
    "pod": {"labels": {"team": "payments"}, "annotations": {"example.com/owner": "payments"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "goqueue", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 90, "antiAffinity": "Required",
            "topologyKey": "topology.kubernetes.io/zone"},
    "disruptionBudget": {"maxUnavailable": 2},
}


@pytest.mark.parametrize("spec", [{}, FULL_SPEC], ids=["defaults", "every-option"])
def test_children_pass_server_side_validation(
    kubectl: Kubectl, goqueue_crds: list[str], module_namespace: str, spec: dict[str, Any],
) -> None:
    name = "full" if spec else "plain"
    cr = {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueCluster", "spec": spec,  # paused: validation only
          "metadata": {"name": name, "annotations": {"goqueue.io/paused": "true"}}}
    kubectl("apply", "-n", module_namespace, "-f", "-", input_text=json.dumps(cr))
    body = json.loads(kubectl("get", "goqueuecluster", name, "-n", module_namespace, "-o", "json"))
    children = build_cluster_children(ClusterView.from_body(body), password="x" * 43, operator_password="y" * 43)
    required = [c for c in children if c["apiVersion"] not in OPTIONAL_APIS]
    assert {c["kind"] for c in required} == {"Secret", "ConfigMap", "Service", "PodDisruptionBudget", "NetworkPolicy",
                                              "StatefulSet"}
    for obj in required:
        proc = subprocess.run(
            [str(kubectl.binary), f"--kubeconfig={kubectl.kubeconfig}", "apply", "--dry-run=server",
             "--server-side", "--field-manager=goqueue-operator", "-f", "-"],
            input=json.dumps(obj), capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{obj['kind']}/{obj['metadata']['name']}: {proc.stderr}"


def test_samples_and_the_operator_deployment_pass_server_side_validation(
    kubectl: Kubectl, goqueue_crds: list[str], module_namespace: str,
) -> None:
    repo = Path(__file__).resolve().parents[3]
    kubectl("apply", "--dry-run=server", "-n", module_namespace, "-f",
            str(repo / "operator" / "deploy" / "samples" / "goqueue.yaml"))
    deployment = [d for d in yaml.safe_load_all((repo / "operator" / "deploy" / "30-deployment.yaml").read_text())
                  if d["kind"] == "Deployment"]
    for doc in deployment:  # into the test's namespace: validation only, nothing runs
        doc["metadata"]["namespace"] = module_namespace
        kubectl("apply", "--dry-run=server", "-f", "-", input_text=json.dumps(doc))
