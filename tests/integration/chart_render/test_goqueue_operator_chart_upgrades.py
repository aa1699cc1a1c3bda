"""charts/goqueue-operator rendered by `helm template`: what issue 16 item 4 added — the operator upgrading its own
CRDs (crds.manage), the ServiceMonitor, topology spread, extra volumes/containers and the `helm test` hook. The
rest of the chart's render tests: test_goqueue_operator_chart.py; the CRD upgrade itself on a real API server:
tests/integration/operator/test_operator_crd_upgrade.py."""

from __future__ import annotations

from typing import Any

import pytest
from helm_chart import Helm, Obj, Rendered
from test_goqueue_operator_chart import CHART, env_of, operator_container, refusal, render

from goqueue_operator.bundled_crds import bundled_names

pytestmark = pytest.mark.integration  # helm renders: a subprocess

EXTRAS = CHART / "ci" / "extras-values.yaml"  # spread, a volume and its mount, an init container
SIDECAR = ("--set", "sidecars[0].name=shipper", "--set", "sidecars[0].image=busybox")

CRD_PATCH_RULE = {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                  "resourceNames": ["goqueueclusters.goqueue.io", "goqueuetopics.goqueue.io",
                                    "goqueueconsumergroups.goqueue.io", "goqueueusers.goqueue.io",
                                    "goqueuerebalances.goqueue.io"],
                  "verbs": ["get", "patch"]}


def crd_rules(rendered: Rendered, name: str = "goqueue-operator") -> list[dict[str, Any]]:
    rules: list[Obj] = rendered.get("ClusterRole", name)["rules"]
    return [r for r in rules if "customresourcedefinitions" in r["resources"]]


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "watchNamespaces"])
def test_managed_crds_get_exactly_their_patch_rule(helm: Helm, namespaced: bool) -> None:
    scope = ("--set", "watchNamespaces={team-a}") if namespaced else ()
    rendered = render(helm, *scope)
    assert crd_rules(rendered) == [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                                    "verbs": ["list", "watch"]}, CRD_PATCH_RULE]
    assert sorted(CRD_PATCH_RULE["resourceNames"]) == bundled_names()
    assert env_of(operator_container(rendered))["GOQUEUE_OPERATOR_MANAGE_CRDS"] == "true"


def test_unmanaged_crds_leave_the_operator_only_its_reads(helm: Helm) -> None:
    rendered = render(helm, "--set", "crds.manage=false")
    assert crd_rules(rendered) == [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                                    "verbs": ["list", "watch"]}]
    assert env_of(operator_container(rendered))["GOQUEUE_OPERATOR_MANAGE_CRDS"] == "false"


SERVICE_MONITOR_API = ("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")


def service_monitors(rendered: Rendered) -> list[Obj]:
    return rendered.of_kind("ServiceMonitor")


def test_the_service_monitor_follows_the_prometheus_operator_api(helm: Helm) -> None:
    assert service_monitors(render(helm)) == []  # auto, and monitoring.coreos.com/v1 not served
    served = render(helm, *SERVICE_MONITOR_API)
    (monitor,) = service_monitors(served)
    assert monitor["metadata"]["name"] == "goqueue-operator"
    assert monitor["metadata"]["namespace"] == "goqueue-system"
    # It selects the metrics Service (and only it) by its labels, and scrapes the Service's port by name.
    service = served.get("Service", "goqueue-operator-metrics")
    selected = [o["metadata"]["name"] for o in served.of_kind("Service")
                if monitor["spec"]["selector"]["matchLabels"].items() <= o["metadata"]["labels"].items()]
    assert selected == ["goqueue-operator-metrics"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["goqueue-system"]}
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "goqueue-operator"  # job="goqueue-operator"


def test_the_service_monitor_can_be_forced_or_turned_off(helm: Helm) -> None:
    forced = render(helm, "--set", "metrics.serviceMonitor.enabled=true",
                    "--set", "metrics.serviceMonitor.labels.release=kube-prometheus-stack")
    (monitor,) = service_monitors(forced)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert service_monitors(render(helm, "--set", "metrics.serviceMonitor.enabled=false", *SERVICE_MONITOR_API)) == []
    assert service_monitors(render(helm, "--set", "metrics.service.enabled=false", *SERVICE_MONITOR_API)) == []
    message = refusal(helm, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false")
    assert "Fix: set metrics.service.enabled=true" in message
    assert "/metrics/serviceMonitor/enabled': value must be one of 'auto', true, false" in refusal(
        helm, "--set", "metrics.serviceMonitor.enabled=sometimes")


def pod_spec(rendered: Rendered) -> Obj:
    spec: Obj = rendered.get("Deployment", "goqueue-operator")["spec"]["template"]["spec"]
    return spec


def test_topology_spread_counts_the_operator_pods_unless_told_otherwise(helm: Helm) -> None:
    assert "topologySpreadConstraints" not in pod_spec(render(helm))
    rendered = render(helm, values_files=(EXTRAS,))
    zone, host = pod_spec(rendered)["topologySpreadConstraints"]
    pod_labels = rendered.get("Deployment", "goqueue-operator")["spec"]["template"]["metadata"]["labels"]
    assert zone["topologyKey"] == "topology.kubernetes.io/zone"
    assert zone["whenUnsatisfiable"] == "ScheduleAnyway"
    assert zone["labelSelector"]["matchLabels"] == rendered.get(
        "Deployment", "goqueue-operator")["spec"]["selector"]["matchLabels"]
    assert zone["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    assert host["labelSelector"] == {"matchLabels": {"a": "b"}}  # the user's own selector is kept as written
    assert "maxSkew" in refusal(helm, "--set", "topologySpreadConstraints[0].topologyKey=zone")


def test_extra_volumes_mounts_sidecars_and_init_containers_go_where_expected(helm: Helm) -> None:
    spec = pod_spec(render(helm, *SIDECAR, values_files=(EXTRAS,)))
    assert [v["name"] for v in spec["volumes"]] == ["tmp", "ca"]
    assert spec["volumes"][1]["configMap"] == {"name": "corp-ca"}
    assert [c["name"] for c in spec["containers"]] == ["operator", "shipper"]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"},
                                                     {"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}]
    assert [c["name"] for c in spec["initContainers"]] == ["wait"]
    defaults = pod_spec(render(helm))
    assert "initContainers" not in defaults
    assert [c["name"] for c in defaults["containers"]] == ["operator"]


@pytest.mark.parametrize(("args", "fix"), [
    (("--set", "extraVolumes[0].name=tmp", "--set", "extraVolumes[0].emptyDir.medium=Memory"),
     "give the volume another name"),
    (("--set", "extraVolumeMounts[0].name=x", "--set", "extraVolumeMounts[0].mountPath=/tmp/"), "mount it elsewhere"),
    (("--set", "sidecars[0].name=operator", "--set", "sidecars[0].image=busybox"), "give the container another name"),
    (("--set", "initContainers[0].name=operator"), "give the container another name"),
    (("--set", "extraVolumeMounts[0].name=x", "--set", "extraVolumeMounts[0].mountPath=relative"), "mountPath"),
    (("--set", "sidecars[0].image=busybox"), "name"),
])
def test_extras_that_cannot_work_are_refused(helm: Helm, args: tuple[str, ...], fix: str) -> None:
    assert fix in refusal(helm, *args)


def test_the_helm_test_pod_asks_the_metrics_service_for_healthz(helm: Helm) -> None:
    rendered = render(helm)
    pod = rendered.get("Pod", "goqueue-operator-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = rendered.get("Service", "goqueue-operator-metrics")
    assert not service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()  # never a metrics endpoint
    (container,) = pod["spec"]["containers"]
    assert "http://goqueue-operator-metrics:8081" in container["command"][-1]
    assert "/healthz" in container["command"][-1]
    assert "Pod/goqueue-operator-test" not in render(helm, "--set", "metrics.service.enabled=false").names()
