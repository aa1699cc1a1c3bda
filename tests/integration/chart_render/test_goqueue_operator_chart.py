"""charts/goqueue-operator rendered by `helm template` and linted: the RBAC of operator/deploy, a Deployment whose
environment the operator accepts, peering with more than one replica, and values refused with a message that says
what to fix. The install itself: tests/integration/charts; the CRD copies and the values schema, read without helm:
tests/unit/charts/test_goqueue_operator_chart_schema.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_chart import REPO, Helm, Obj, Rendered, RenderFailed

from goqueue_harness.demo import helm_pod_annotations
from goqueue_harness.images import IMAGE_ID_ANNOTATION
from goqueue_operator.settings import OperatorSettings, load_settings

pytestmark = pytest.mark.integration  # helm renders and lints: a subprocess

CHART = REPO / "charts" / "goqueue-operator"
DEPLOY_RBAC = REPO / "operator" / "deploy" / "20-rbac.yaml"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
DEFAULT_OBJECTS = [
    "ClusterRole/goqueue-operator", "ClusterRole/goqueue-operator-edit", "ClusterRole/goqueue-operator-view",
    "ClusterRoleBinding/goqueue-operator", "Deployment/goqueue-operator", "Service/goqueue-operator-metrics",
    "ServiceAccount/goqueue-operator",
]


def render(helm: Helm, *args: str, release: str = "goqueue-operator", namespace: str = "goqueue-system",
           values_files: tuple[Path, ...] = ()) -> Rendered:
    files = [arg for path in values_files for arg in ("-f", str(path))]
    proc = helm.run("template", release, str(CHART), "-n", namespace, *files, *args)
    return Rendered([doc for doc in yaml.safe_load_all(proc.stdout) if doc])


def refusal(helm: Helm, *args: str) -> str:
    try:
        rendered = render(helm, *args)
    except RenderFailed as exc:
        message: str = exc.message
        return message
    raise AssertionError(f"helm rendered {args} without complaint: {rendered.names()}")


def operator_container(rendered: Rendered, name: str = "goqueue-operator") -> Obj:
    (container,) = rendered.get("Deployment", name)["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "operator"
    result: Obj = container
    return result


def env_of(container: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def resolved_env(container: Obj, pod_ip: str = "10.1.2.3", pod_name: str = "op-0") -> dict[str, str]:
    """The environment as the kubelet gives it: fieldRefs filled in, then $(VAR) expanded in order."""
    fields = {"status.podIP": pod_ip, "metadata.name": pod_name}
    env: dict[str, str] = {}
    for var in container["env"]:
        if "valueFrom" in var:
            env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[var["name"]] = re.sub(r"\$\(([A-Z_]+)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"])
    return env


@pytest.fixture(scope="module")
def defaults(helm: Helm) -> Rendered:
    """What `helm install` creates (the `helm test` Pod: test_goqueue_operator_chart_upgrades.py)."""
    return render(helm, "--skip-tests")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_lint_is_clean_for_every_scenario(helm: Helm, scenario: Path) -> None:
    lint = helm.run("lint", str(CHART), "--strict", "-f", str(scenario), check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "[ERROR]" not in lint.stdout
    assert "[WARNING]" not in lint.stdout
    assert render(helm, values_files=(scenario,)).of_kind("Deployment")


def test_defaults_render_the_operator_objects(defaults: Rendered) -> None:
    assert defaults.names() == DEFAULT_OBJECTS


def _deploy_roles() -> dict[str, Obj]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(DEPLOY_RBAC.read_text())
            if d and d["kind"] == "ClusterRole"}


def test_rbac_rules_are_operator_deploys(defaults: Rendered) -> None:
    deploy = _deploy_roles()
    assert defaults.get("ClusterRole", "goqueue-operator")["rules"] == deploy["goqueue-operator"]["rules"]
    for ours, theirs in (("goqueue-operator-view", "goqueue-view"), ("goqueue-operator-edit", "goqueue-edit")):
        role = defaults.get("ClusterRole", ours)
        assert role["rules"] == deploy[theirs]["rules"]
        aggregation = {k: v for k, v in role["metadata"]["labels"].items() if k.startswith("rbac.authorization")}
        assert aggregation == {k: v for k, v in deploy[theirs]["metadata"]["labels"].items()
                               if k.startswith("rbac.authorization")}
    binding = defaults.get("ClusterRoleBinding", "goqueue-operator")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "goqueue-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "goqueue-operator",
                                    "namespace": "goqueue-system"}]
    pod = defaults.get("Deployment", "goqueue-operator")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "goqueue-operator"
    assert pod["automountServiceAccountToken"] is True


def test_cluster_scoped_names_follow_the_release(helm: Helm) -> None:
    rendered = render(helm, release="t-abc", namespace="t-abc")
    cluster_scoped = sorted(o["metadata"]["name"] for o in rendered.objects
                            if o["kind"] in ("ClusterRole", "ClusterRoleBinding"))
    assert cluster_scoped == ["t-abc-goqueue-operator", "t-abc-goqueue-operator", "t-abc-goqueue-operator-edit",
                              "t-abc-goqueue-operator-view"]
    assert rendered.get("ClusterRoleBinding", "t-abc-goqueue-operator")["subjects"][0]["namespace"] == "t-abc"


def test_the_deployment_is_one_standalone_non_root_replica_replaced_by_recreate(defaults: Rendered) -> None:
    deployment = defaults.get("Deployment", "goqueue-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # two versions never reconcile at once
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    container = operator_container(defaults)
    assert container["command"] == ["goqueue-operator"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    assert env_of(container)["GOQUEUE_OPERATOR_STANDALONE"] == "true"
    assert defaults.of_kind("ClusterKopfPeering") == []


def test_liveness_probes_healthz_on_the_metrics_port_the_service_targets(defaults: Rendered) -> None:
    container = operator_container(defaults)
    assert container["ports"] == [{"name": "metrics", "containerPort": 8081, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    service = defaults.get("Service", "goqueue-operator-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = defaults.get("Deployment", "goqueue-operator")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_the_metrics_server_binds_the_pod_ip(defaults: Rendered, helm: Helm) -> None:
    env = env_of(operator_container(defaults))
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["GOQUEUE_OPERATOR_METRICS_HOST"] == "$(POD_IP)"
    assert resolved_env(operator_container(defaults))["GOQUEUE_OPERATOR_METRICS_HOST"] == "10.1.2.3"
    everywhere = env_of(operator_container(render(helm, "--set", "metrics.bind=All")))
    assert everywhere["GOQUEUE_OPERATOR_METRICS_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_the_operator_accepts_the_rendered_environment(helm: Helm, scenario: Path) -> None:
    values = yaml.safe_load(scenario.read_text()) or {}
    container = operator_container(render(helm, values_files=(scenario,)))
    env = resolved_env(container)
    ours = {k: v for k, v in env.items() if k.startswith("GOQUEUE_OPERATOR_")}
    settings = load_settings(ours)  # raises on an unknown variable or a bad value, as the operator would exit 2
    assert settings.metrics_host in ("10.1.2.3", "0.0.0.0")
    assert settings.namespaces == values.get("watchNamespaces", [])
    assert settings.standalone is (values.get("replicaCount", 1) == 1)
    expected = {**VALUES["settings"], **values.get("settings", {})}
    assert settings.drift_interval_s == expected["driftIntervalSeconds"]
    assert settings.cluster_resync_s == expected["clusterResyncSeconds"]
    assert settings.log_level == expected["logLevel"]
    # Every setting except priority (random per replica, so peers differ) is set by the chart.
    assert {k.removeprefix("GOQUEUE_OPERATOR_").lower() for k in ours} == set(OperatorSettings.model_fields) - {
        "priority"}


def test_more_replicas_peer_cluster_wide(helm: Helm) -> None:
    rendered = render(helm, "--set", "replicaCount=2")
    env = env_of(operator_container(rendered))
    assert env["GOQUEUE_OPERATOR_STANDALONE"] == "false"
    assert env["GOQUEUE_OPERATOR_PEERING_NAME"] == "goqueue-operator"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # kopf's identity in the peering object
    rendered.get("ClusterKopfPeering", "goqueue-operator")
    assert rendered.get("Deployment", "goqueue-operator")["spec"]["replicas"] == 2
    assert rendered.get("ClusterRole", "goqueue-operator")["rules"] == _deploy_roles()["goqueue-operator"]["rules"]


KOPF_PEERINGS_RULE = {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"],
                      "verbs": ["get", "list", "watch", "patch"]}
CLUSTER_PEERINGS_RULE = {**KOPF_PEERINGS_RULE, "resources": ["clusterkopfpeerings"]}
# What an operator serving listed namespaces may do cluster-wide: kopf lists and watches CRDs and namespaces (never
# the custom resources: those it watches per namespace), a topic's finalizer gets its namespace, a storage expansion
# gets the StorageClass. All cluster-scoped kinds.
CLUSTER_SCOPED = {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces"),
                  ("storage.k8s.io", "storageclasses")}


def _in_namespaces(rendered: Rendered, kind: str, name: str) -> dict[str, Obj]:
    found = {o["metadata"]["namespace"]: o for o in rendered.of_kind(kind) if o["metadata"]["name"] == name}
    assert len(found) == len([o for o in rendered.of_kind(kind) if o["metadata"]["name"] == name])
    return found


@pytest.mark.parametrize("replicas", [1, 2])
def test_serving_namespaces_grants_a_role_in_each_and_only_cluster_scoped_reads_cluster_wide(
        helm: Helm, replicas: int) -> None:
    rendered = render(helm, "--set", f"replicaCount={replicas}", "--set", "watchNamespaces={team-a,team-b}")
    reference = _deploy_roles()["goqueue-operator"]["rules"]
    cluster_rules = rendered.get("ClusterRole", "goqueue-operator")["rules"]
    assert {(group, resource) for rule in cluster_rules for group in rule["apiGroups"]
            for resource in rule["resources"]} == CLUSTER_SCOPED
    roles = _in_namespaces(rendered, "Role", "goqueue-operator")
    assert sorted(roles) == ["team-a", "team-b"]
    role_rules = roles["team-a"]["rules"]
    assert roles["team-b"]["rules"] == role_rules
    assert not [r for r in role_rules if r in cluster_rules]  # each rule in one place
    # Together the reference's rules, in its order, less the ClusterKopfPeering (kopf serving listed namespaces
    # peers per namespace only), plus the KopfPeering in each namespace when replicas peer.
    union = [r for r in reference if r in cluster_rules or r in role_rules]
    assert union == [r for r in reference if r != CLUSTER_PEERINGS_RULE]
    assert [r for r in cluster_rules + role_rules if r not in reference] == (
        [KOPF_PEERINGS_RULE] if replicas > 1 else [])
    bindings = _in_namespaces(rendered, "RoleBinding", "goqueue-operator")
    assert sorted(bindings) == ["team-a", "team-b"]
    for binding in bindings.values():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "goqueue-operator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "goqueue-operator",
                                        "namespace": "goqueue-system"}]
    cluster_binding = rendered.get("ClusterRoleBinding", "goqueue-operator")
    assert cluster_binding["roleRef"]["name"] == "goqueue-operator"
    assert cluster_binding["subjects"] == bindings["team-a"]["subjects"]


def test_more_replicas_serving_namespaces_peer_in_each(helm: Helm) -> None:
    rendered = render(helm, "--set", "replicaCount=2", "--set", "watchNamespaces={team-a,team-b}")
    peerings = rendered.of_kind("KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in peerings} == {"goqueue-operator"}
    assert rendered.of_kind("ClusterKopfPeering") == []
    for role in _in_namespaces(rendered, "Role", "goqueue-operator").values():
        assert KOPF_PEERINGS_RULE in role["rules"]
    assert env_of(operator_container(rendered))["GOQUEUE_OPERATOR_NAMESPACES"] == "team-a,team-b"


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "replicaCount=0"), "at '/replicaCount': minimum: got 0, want 1"),
    (("--set", "metrics.bind=Anywhere"), "at '/metrics/bind': value must be one of 'PodIP', 'All'"),
    (("--set", "metrics.port=0"), "at '/metrics/port': minimum: got 0, want 1"),
    (("--set", "settings.driftIntervalSeconds=0"), "at '/settings/driftIntervalSeconds': exclusiveMinimum"),
    (("--set", "settings.logLevel=debug"), "at '/settings/logLevel': value must be one of"),
    (("--set", "watchNamespaces={Team_A}"), "at '/watchNamespaces/0': 'Team_A' does not match pattern"),
    (("--set", "watchNamespaces={a,a}"), "watchNamespaces lists a twice"),
    (("--set", "extraEnv[0].name=GOQUEUE_OPERATOR_NAMESPACES", "--set", "extraEnv[0].value=x"),
     "extraEnv sets GOQUEUE_OPERATOR_NAMESPACES, which the chart sets from its values"),
    (("--set", "extraEnv[0].name=KUBECONFIG", "--set", "extraEnv[0].value=/x"), "extraEnv sets KUBECONFIG"),
    (("--set", "extraEnv[0].name=DEBUG", "--set", "extraEnv[0].value=1"), "at '/extraEnv/0/value': got number"),
    (("--set", "image.digest=latest"), "at '/image/digest'"),
    (("--set", "replicas=2"), "additional properties 'replicas' not allowed"),
])
def test_bad_values_are_refused_with_a_clear_message(helm: Helm, args: tuple[str, ...], message: str) -> None:
    assert message in refusal(helm, *args)


def test_the_image_id_annotation_of_a_rebuilt_operator_reaches_its_pod_template(helm: Helm) -> None:
    """make up and the e2e kind backend keep a tag across builds; the annotation (dots escaped for --set) is what
    makes a kept cluster replace an operator pod still running the previous build."""
    annotations = {IMAGE_ID_ANNOTATION: "0123456789ab", "example.com/two.dots": "x"}
    rendered = render(helm, *helm_pod_annotations(annotations))
    template = rendered.get("Deployment", "goqueue-operator")["spec"]["template"]
    assert template["metadata"]["annotations"] == annotations
