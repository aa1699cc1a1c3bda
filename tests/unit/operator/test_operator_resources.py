"""The pure builders of a GoQueueCluster's children, field by field (no cluster needed)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import goqueue_operator
from goqueue.config import BrokerSection
from goqueue_operator.resources import labels, names, ports
from goqueue_operator.resources.children import CREATE_ONLY_KINDS, OPTIONAL_APIS, build_cluster_children
from goqueue_operator.resources.configmap import broker_settings, config_hash
from goqueue_operator.resources.pdb import build_pdb, quorum_tolerance
from goqueue_operator.resources.pod_template import peer_addresses
from goqueue_operator.resources.statefulset import build_statefulset
from goqueue_operator.views import ClusterView

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
PASSWORD = "p" * 43
OPERATOR_PASSWORD = "o" * 43


def cluster(name: str = "goqueue", namespace: str = "goqueue", **spec: Any) -> ClusterView:
    body = {"metadata": {"name": name, "namespace": namespace, "uid": "uid-1", "generation": 1}, "spec": spec}
    return ClusterView.from_body(body)


def children(view: ClusterView | None = None, **kwargs: Any) -> list[JSON]:
    return build_cluster_children(view or cluster(), password=PASSWORD, operator_password=OPERATOR_PASSWORD, **kwargs)


def child(kind: str, name: str, view: ClusterView | None = None, **kwargs: Any) -> JSON:
    """Select a child by kind and name, never by position."""
    matches = [c for c in children(view, **kwargs) if c["kind"] == kind and c["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} children"
    return matches[0]


def container(sts: JSON) -> JSON:
    (broker,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == names.BROKER_CONTAINER]
    return broker


def env(sts: JSON) -> dict[str, JSON]:
    return {e["name"]: e for e in container(sts)["env"]}


# -- names and metadata --------------------------------------------------------------------------------------------

def test_runbook_names_for_a_cluster_named_goqueue() -> None:
    kinds_and_names = {(c["kind"], c["metadata"]["name"]) for c in children()}
    assert {("StatefulSet", "goqueue"), ("Service", "goqueue"), ("Service", "goqueue-headless"),
            ("Service", "goqueue-metrics"), ("ConfigMap", "goqueue-config"), ("PodDisruptionBudget", "goqueue"),
            ("Secret", "goqueue-raft")} <= kinds_and_names
    assert names.pod_name("goqueue", 2) == "goqueue-2"
    # the StatefulSet controller names each pod's claim <template>-<pod>
    assert f"{names.DATA_CLAIM_TEMPLATE}-{names.pod_name('goqueue', 0)}" == "goqueue-data-goqueue-0"
    assert names.ordinal_of("goqueue-12") == 12
    assert names.ordinal_of("goqueue") is None


def test_every_child_is_owned_by_the_cluster_in_its_namespace() -> None:
    for obj in children(cluster(namespace="prod")):
        meta = obj["metadata"]
        assert meta["namespace"] == "prod"
        assert meta["ownerReferences"] == [{
            "apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueCluster", "name": "goqueue", "uid": "uid-1",
            "controller": True, "blockOwnerDeletion": True}]


def test_every_child_carries_the_common_labels_and_selector_labels_are_a_subset() -> None:
    common = labels.common_labels("goqueue", "0.1.0")
    selector = labels.selector_labels("goqueue")
    assert selector.items() <= common.items()
    assert labels.VERSION not in selector  # a selector never changes with an upgrade
    for obj in children():
        assert common.items() <= obj["metadata"]["labels"].items(), obj["kind"]
    assert labels.selector_string("goqueue") == (
        "app.kubernetes.io/component=broker,app.kubernetes.io/instance=goqueue,app.kubernetes.io/name=goqueue")


def test_children_order_config_and_secret_before_the_statefulset_optional_last() -> None:
    kinds = [c["kind"] for c in children()]
    assert kinds.index("Secret") < kinds.index("StatefulSet")
    assert kinds.index("ConfigMap") < kinds.index("StatefulSet")
    assert kinds.index("PodDisruptionBudget") < kinds.index("StatefulSet")
    assert kinds[-2:] == ["ServiceMonitor", "PrometheusRule"]
    assert {c["apiVersion"] for c in children()[-2:]} <= OPTIONAL_APIS


def test_monitoring_children_only_when_enabled() -> None:
    kinds = {c["kind"] for c in children(cluster(monitoring={"serviceMonitor": False, "prometheusRule": False}))}
    assert "ServiceMonitor" not in kinds
    assert "PrometheusRule" not in kinds


def test_builders_are_deterministic() -> None:
    assert children() == children()


# -- ConfigMap ------------------------------------------------------------------------------------------------------

def test_configmap_holds_the_broker_settings_file() -> None:
    view = cluster(config={"retention.maxAge": "72h", "storage.fsync": "interval"}, pod={
        "terminationGracePeriodSeconds": 45})
    data = child("ConfigMap", "goqueue-config", view)["data"]
    settings = yaml.safe_load(data["goqueue.yaml"])
    assert settings["broker"] == {"port": 8080, "grpcPort": 9000, "raftPort": 7000, "shutdownGrace": "35s"}
    assert settings["storage"] == {"dataDir": "/data", "walDir": "/data/wal", "fsync": "interval"}
    assert settings["retention"] == {"maxAge": "72h"}
    assert broker_settings(view) == settings


def test_config_hash_changes_with_settings_and_only_with_them() -> None:
    assert config_hash(cluster()) == config_hash(cluster(replicas=5))
    assert config_hash(cluster()) != config_hash(cluster(config={"retention.maxAge": "1h"}))


# -- StatefulSet ----------------------------------------------------------------------------------------------------

def test_statefulset_is_rolled_by_the_operator_not_the_controller() -> None:
    spec = child("StatefulSet", "goqueue")["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == "goqueue-headless"
    assert spec["replicas"] == 3
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_statefulset_selector_matches_its_pod_template_and_never_the_version() -> None:
    spec = child("StatefulSet", "goqueue")["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selector == labels.selector_labels("goqueue")
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()


def test_claim_template_keeps_its_name_and_uses_the_applied_size() -> None:
    view = cluster(storage={"size": "20Gi", "storageClassName": "fast"})
    (template,) = build_statefulset(view, claim_size="10Gi")["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "goqueue-data"
    assert template["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                                "resources": {"requests": {"storage": "10Gi"}}}
    (default,) = build_statefulset(view)["spec"]["volumeClaimTemplates"]
    assert default["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "storageClassName" not in build_statefulset(cluster())["spec"]["volumeClaimTemplates"][0]["spec"]


def test_broker_container_command_ports_and_mounts() -> None:
    broker = container(child("StatefulSet", "goqueue"))
    assert broker["command"] == ["goqueue-broker", "--config", "/etc/goqueue/goqueue.yaml"]
    assert broker["image"] == "ghcr.io/goqueue/goqueue:0.1.0"
    assert {p["name"]: p["containerPort"] for p in broker["ports"]} == {
        "http": 8080, "grpc": 9000, "raft": 7000, "internal": 8081}
    mounts = {m["mountPath"]: m["name"] for m in broker["volumeMounts"]}
    assert mounts["/data"] == "goqueue-data"
    assert mounts["/etc/goqueue"] == "config"


def test_probes_health_and_readiness_on_the_http_port() -> None:
    broker = container(child("StatefulSet", "goqueue"))
    assert broker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "scheme": "HTTP"}
    assert broker["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert broker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTP"}
    startup = broker["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # recovery is never killed half-way


def test_peers_are_the_headless_dns_names_on_the_raft_port() -> None:
    variables = env(child("StatefulSet", "goqueue", cluster(namespace="prod")))
    assert variables["GOQUEUE_CLUSTER_PEERS"]["value"] == ",".join(
        f"goqueue-{i}.goqueue-headless.prod.svc.cluster.local:7000" for i in range(3))
    assert peer_addresses(cluster(), 0) == []


def test_peers_follow_the_replicas_being_applied() -> None:
    sts = build_statefulset(cluster(replicas=2), replicas=3)
    assert sts["spec"]["replicas"] == 3
    assert env(sts)["GOQUEUE_CLUSTER_PEERS"]["value"].count(":7000") == 3


def test_raft_password_is_a_file_from_the_secret_never_a_variable() -> None:
    """cluster.passwordFile names the mounted Secret's file; no variable holds the password, not even by reference
    (a secretKeyRef's value would be in the broker's /proc/<pid>/environ)."""
    sts = child("StatefulSet", "goqueue")
    variables = env(sts)
    assert variables["GOQUEUE_CLUSTER_PASSWORDFILE"]["value"] == "/var/run/goqueue/cluster/password"
    assert not [e for e in variables.values() if "secretKeyRef" in e.get("valueFrom", {})], variables
    assert {"name": "raft-secret", "mountPath": "/var/run/goqueue/cluster", "readOnly": True} in (
        container(sts)["volumeMounts"])
    assert {"name": "raft-secret", "secret": {"secretName": "goqueue-raft", "defaultMode": 0o440, "items": [
        {"key": "password", "path": "password"}]}} in sts["spec"]["template"]["spec"]["volumes"]
    assert PASSWORD not in str(sts)


def test_broker_id_and_addresses_come_from_the_pod() -> None:
    variables = env(child("StatefulSet", "goqueue"))
    assert variables["GOQUEUE_BROKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']")
    assert variables["GOQUEUE_BROKER_HOST"]["value"] == "0.0.0.0"
    assert variables["GOQUEUE_BROKER_ADVERTISEDHOST"]["value"] == (
        "$(POD_NAME).goqueue-headless.goqueue.svc.cluster.local")
    names_in_order = [e["name"] for e in container(child("StatefulSet", "goqueue"))["env"]]
    assert names_in_order.index("POD_NAME") < names_in_order.index("GOQUEUE_BROKER_ADVERTISEDHOST")
    pod_ip = env(child("StatefulSet", "goqueue", cluster(network={"bind": "PodIP"})))
    assert pod_ip["GOQUEUE_BROKER_HOST"]["value"] == "$(POD_IP)"


def test_pod_runs_as_non_root_with_a_read_only_root() -> None:
    pod = child("StatefulSet", "goqueue")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    security = container(child("StatefulSet", "goqueue"))["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]


def test_grace_period_resources_and_scheduling() -> None:
    view = cluster(pod={"terminationGracePeriodSeconds": 120, "nodeSelector": {"disk": "ssd"},
                        "tolerations": [{"key": "dedicated", "operator": "Exists"}], "priorityClassName": "high"},
                   resources={"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}})
    pod = child("StatefulSet", "goqueue", view)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 120
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["priorityClassName"] == "high"
    assert container(child("StatefulSet", "goqueue", view))["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}


@pytest.mark.parametrize("mode", ["Preferred", "Required", "None"])
def test_anti_affinity_spreads_brokers(mode: str) -> None:
    pod = child("StatefulSet", "goqueue", cluster(pod={"antiAffinity": mode}))["spec"]["template"]["spec"]
    if mode == "None":
        assert "affinity" not in pod
        return
    rules = pod["affinity"]["podAntiAffinity"]
    if mode == "Required":
        (term,) = rules["requiredDuringSchedulingIgnoredDuringExecution"]
    else:
        (weighted,) = rules["preferredDuringSchedulingIgnoredDuringExecution"]
        term = weighted["podAffinityTerm"]
    assert term == {"labelSelector": {"matchLabels": labels.selector_labels("goqueue")},
                    "topologyKey": "kubernetes.io/hostname"}


def test_user_pod_labels_cannot_override_the_selector() -> None:
    view = cluster(pod={"labels": {labels.INSTANCE: "other", "team": "payments"}})
    template_labels = child("StatefulSet", "goqueue", view)["spec"]["template"]["metadata"]["labels"]
    assert template_labels[labels.INSTANCE] == "goqueue"
    assert template_labels["team"] == "payments"


def test_a_settings_change_changes_the_pod_template() -> None:
    before = child("StatefulSet", "goqueue")["spec"]["template"]
    after = child("StatefulSet", "goqueue", cluster(config={"retention.maxAge": "1h"}))["spec"]["template"]
    assert before["metadata"]["annotations"][labels.CONFIG_HASH_ANNOTATION] != (
        after["metadata"]["annotations"][labels.CONFIG_HASH_ANNOTATION])


def test_upgrading_the_operator_changes_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator upgrade must restart no broker: nothing built depends on the operator's version.

    The version is replaced wherever a module of the operator holds it, not only in the package: a builder that did
    `from goqueue_operator import __version__` keeps its own binding, which patching the package would not reach."""
    for module in pkgutil.walk_packages(goqueue_operator.__path__, "goqueue_operator."):
        importlib.import_module(module.name)  # every module loaded, so every binding is found
    current = goqueue_operator.__version__
    before = children()
    holders = [(module, name) for module in list(sys.modules.values())
               if getattr(module, "__name__", "").split(".")[0] == "goqueue_operator"
               for name, value in vars(module).items() if isinstance(value, str) and value == current]
    assert (goqueue_operator, "__version__") in holders
    for module, name in holders:
        monkeypatch.setattr(module, name, "9.9.9")
    after = children()
    assert "9.9.9" not in str(after)
    assert after == before


# -- Services --------------------------------------------------------------------------------------------------------

def test_headless_service_publishes_not_ready_brokers_for_peer_discovery() -> None:
    spec = child("Service", "goqueue-headless")["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True
    assert spec["selector"] == labels.selector_labels("goqueue")
    # Brokers reach each other by pod DNS name: the Raft and internal ports are on the headless Service only.
    assert {p["name"]: p["port"] for p in spec["ports"]} == {"http": 8080, "grpc": 9000, "raft": 7000, "internal": 8081}


def test_client_service_serves_http_and_grpc_of_ready_brokers() -> None:
    spec = child("Service", "goqueue")["spec"]
    assert spec["type"] == "ClusterIP"
    assert "publishNotReadyAddresses" not in spec
    assert {p["name"]: (p["port"], p["targetPort"]) for p in spec["ports"]} == {
        "http": (8080, "http"), "grpc": (9000, "grpc")}


def test_metrics_service_port_9000_targets_the_http_port() -> None:
    """The runbook: `kubectl port-forward svc/goqueue-metrics 9000:9000; curl localhost:9000/metrics`."""
    (port,) = child("Service", "goqueue-metrics")["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (9000, "http")
    http = [p for p in container(child("StatefulSet", "goqueue"))["ports"] if p["name"] == port["targetPort"]]
    assert http[0]["containerPort"] == 8080


def test_the_internal_port_is_the_brokers_default_and_set_by_variable_not_in_the_settings_file() -> None:
    """A broker of an older spec.version refuses an unknown key in its settings file but ignores an unknown
    variable: the port reaches it as GOQUEUE_BROKER_INTERNALPORT."""
    assert BrokerSection().internal_port == ports.INTERNAL_PORT
    statefulset = child("StatefulSet", "goqueue")
    assert env(statefulset)["GOQUEUE_BROKER_INTERNALPORT"]["value"] == "8081"
    assert "internalPort" not in broker_settings(cluster())["broker"]


# -- NetworkPolicy ----------------------------------------------------------------------------------------------------

def ingress(view: ClusterView | None = None) -> list[JSON]:
    policy = child("NetworkPolicy", "goqueue", view)["spec"]
    assert policy["podSelector"] == {"matchLabels": labels.selector_labels("goqueue")}
    assert policy["policyTypes"] == ["Ingress"]
    rules: list[JSON] = policy["ingress"]
    return rules


def rule_ports(rule: JSON) -> set[int]:
    return {p["port"] for p in rule["ports"]}


def namespaces_of(rule: JSON) -> set[str]:
    return {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in rule["from"]}


def test_the_network_policy_admits_only_brokers_to_raft_and_internal_ports() -> None:
    rules = ingress()
    assert rules[0] == {"from": [{"podSelector": {"matchLabels": labels.selector_labels("goqueue")}}],
                        "ports": [{"port": 7000, "protocol": "TCP"}, {"port": 8081, "protocol": "TCP"}]}
    assert all(rule_ports(rule).isdisjoint({7000, 8081}) for rule in rules[1:])
    assert rules[1] == {"ports": [{"port": 8080, "protocol": "TCP"}, {"port": 9000, "protocol": "TCP"}]}  # any client
    assert (rule_ports(rules[2]), namespaces_of(rules[2])) == ({8080}, {"monitoring"})
    for service in ("goqueue", "goqueue-metrics"):
        targets = {p["targetPort"] for p in child("Service", service)["spec"]["ports"]}
        assert targets.isdisjoint({"raft", "internal"}), service


def test_restricted_clients_still_admit_the_cluster_namespace_and_the_operator() -> None:
    rules = ingress(cluster(namespace="prod", networkPolicy={"clientNamespaces": ["apps"],
                                                            "metricsNamespaces": ["observability"]}))
    assert (rule_ports(rules[1]), namespaces_of(rules[1])) == ({8080, 9000}, {"apps", "prod"})
    assert rules[2] == {"from": [{"namespaceSelector": {}, "podSelector": {
        "matchLabels": {"app.kubernetes.io/name": "goqueue-operator"}}}], "ports": [{"port": 8080, "protocol": "TCP"}]}
    assert namespaces_of(rules[3]) == {"observability"}


def test_a_disabled_network_policy_admits_everything_and_stays_owned() -> None:
    assert ingress(cluster(networkPolicy={"enabled": False})) == [{}]


# -- PodDisruptionBudget ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("replicas", "tolerated"), [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (7, 3)])
def test_quorum_tolerance_is_a_minority(replicas: int, tolerated: int) -> None:
    assert quorum_tolerance(replicas) == tolerated
    assert replicas - tolerated > replicas // 2 or replicas == 0  # a majority stays up


def test_pdb_allows_at_most_a_minority_down() -> None:
    assert build_pdb(cluster())["spec"]["maxUnavailable"] == 1
    assert build_pdb(cluster(replicas=1))["spec"]["maxUnavailable"] == 0
    assert build_pdb(cluster(replicas=5, disruptionBudget={"maxUnavailable": 4}))["spec"]["maxUnavailable"] == 2
    assert build_pdb(cluster(replicas=5, disruptionBudget={"maxUnavailable": 0}))["spec"]["maxUnavailable"] == 0
    assert build_pdb(cluster(replicas=2), replicas=3)["spec"]["maxUnavailable"] == 1  # brokers that still run
    spec = child("PodDisruptionBudget", "goqueue")["spec"]
    assert spec["selector"] == {"matchLabels": labels.selector_labels("goqueue")}
    assert "minAvailable" not in spec


# -- Secret -----------------------------------------------------------------------------------------------------------

def test_secret_holds_the_password_and_is_created_once() -> None:
    secret = child("Secret", "goqueue-raft")
    assert secret["stringData"] == {"password": PASSWORD}
    assert secret["immutable"] is True
    assert "Secret" in CREATE_ONLY_KINDS
    with pytest.raises(AssertionError):
        build_cluster_children(cluster(), password="short", operator_password=OPERATOR_PASSWORD)


# -- monitoring -------------------------------------------------------------------------------------------------------

def test_service_monitor_selects_only_the_metrics_service() -> None:
    selector = child("ServiceMonitor", "goqueue")["spec"]["selector"]["matchLabels"]
    services = {c["metadata"]["name"]: c["metadata"]["labels"] for c in children() if c["kind"] == "Service"}
    selected = [name for name, lbls in services.items() if selector.items() <= lbls.items()]
    assert selected == ["goqueue-metrics"]
    (endpoint,) = child("ServiceMonitor", "goqueue")["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}


def test_prometheus_rule_carries_the_runbook_thresholds() -> None:
    (group,) = child("PrometheusRule", "goqueue")["spec"]["groups"]
    alerts = {(r["alert"], r["labels"]["severity"]): r["expr"] for r in group["rules"]}
    assert alerts[("GoQueueHighConsumerLag", "warning")].endswith("> 5000")
    assert alerts[("GoQueueHighConsumerLag", "critical")].endswith("> 10000")
    assert alerts[("GoQueueHighDiskUsage", "warning")].endswith("> 80")
    assert alerts[("GoQueueHighDiskUsage", "critical")].endswith("> 90")
    assert 'service="goqueue-metrics"' in alerts[("GoQueueHighConsumerLag", "warning")]
    assert ("GoQueueBrokerDown", "critical") in alerts


REPO = Path(__file__).resolve().parents[3]
ALERT_PACK = REPO / "deploy" / "observability" / "prometheus" / "goqueue-alerts.yaml"
# The alerts on the operator's own metric, which no cluster's rule can scope (docs/OPERATOR.md, children table).
OPERATOR_ALERT_GROUP = "goqueue.operator"
SERIES = re.compile(r"\b(up|goqueue_\w+)(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def canonical_alerts(*, broker_only: bool) -> list[JSON]:
    groups = yaml.safe_load(ALERT_PACK.read_text())["groups"]
    return [rule for group in groups if not (broker_only and group["name"] == OPERATOR_ALERT_GROUP)
            for rule in group["rules"] if "alert" in rule]


def series_selectors(expr: str) -> list[tuple[str, set[tuple[str, str, str]]]]:
    """Each series selector of a PromQL expression, in order: metric name and its label matchers."""
    return [(m[1], set(MATCHER.findall(m[2] or ""))) for m in SERIES.finditer(expr)]


def without_matchers(expr: str) -> str:
    """The expression with every selector's label matchers taken out: functions, grouping, operators, thresholds."""
    return SERIES.sub(lambda m: m[1], expr)


def test_prometheus_rule_is_the_canonical_alert_pack_scoped_to_the_cluster() -> None:
    """Both ways: every alert of deploy/observability's pack (the promtool-tested one the chart ships) on broker
    metrics is in the operator's rule, and nothing else is; each with the same severity, duration, summary,
    description and runbook link, and the same expression but for this cluster's matchers on every series. The
    operator and the chart then page people the same way. The pack's operator group is left out on purpose."""
    view = cluster(name="orders", namespace="shop")
    (group,) = child("PrometheusRule", "orders", view)["spec"]["groups"]
    shipped = [(r["alert"], r["labels"]["severity"]) for r in group["rules"]]
    canonical = {(r["alert"], r["labels"]["severity"]): r for r in canonical_alerts(broker_only=True)}
    assert len(shipped) == len(set(shipped)), "an alert shipped twice"
    assert sorted(shipped) == sorted(canonical)
    assert {r["alert"] for r in canonical_alerts(broker_only=False)} - {a for a, _ in shipped} == {
        "GoQueueRolloutBlocked"}
    scope = {("job", "=", "goqueue"), ("namespace", "=", "shop"), ("service", "=", "orders-metrics")}
    for rule in group["rules"]:
        reference = canonical[(rule["alert"], rule["labels"]["severity"])]
        assert {k: v for k, v in rule.items() if k != "expr"} == {k: v for k, v in reference.items() if k != "expr"}
        assert without_matchers(rule["expr"]) == without_matchers(reference["expr"]), rule["alert"]
        assert [(name, matchers) for name, matchers in series_selectors(rule["expr"])] == [
            (name, scope | {m for m in matchers if m[0] not in {"job", "namespace", "service"}})
            for name, matchers in series_selectors(reference["expr"])], rule["alert"]
    assert child("ServiceMonitor", "orders", view)["spec"]["jobLabel"] == "app.kubernetes.io/name"  # job="goqueue"


def test_the_operators_copy_of_the_alert_pack_is_the_canonical_file() -> None:
    copy = REPO / "operator" / "goqueue_operator" / "resources" / "goqueue-alerts.yaml"
    assert copy.read_bytes() == ALERT_PACK.read_bytes(), (
        f"{copy.relative_to(REPO)} differs from {ALERT_PACK.relative_to(REPO)}: "
        f"cp {ALERT_PACK.relative_to(REPO)} {copy.relative_to(REPO)}")


def test_anonymous_access_is_the_brokers_default_unless_spec_config_decides() -> None:
    """The operator has a principal of its own (tests/unit/operator/test_operator_principal.py): nothing turns
    anonymous access on behind spec.config's back."""
    assert "GOQUEUE_SECURITY_ALLOWANONYMOUS" not in env(child("StatefulSet", "goqueue"))
    assert "security" not in broker_settings(cluster())
    opened = cluster(config={"security.allowAnonymous": "true"})
    assert broker_settings(opened)["security"] == {"allowAnonymous": "true"}
