"""charts/goqueue rendered by `helm template`, field by field: the runbook's names, a StatefulSet whose brokers can
form their Raft quorum, Services, PDB, labels, and a settings file the broker accepts."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_chart import RUNBOOK_INSTALL, Helm, Obj, Rendered

from goqueue.config import load_settings
from goqueue_operator.resources import labels as operator_labels

pytestmark = pytest.mark.integration  # helm renders and lints: a subprocess

RUNBOOK_OBJECTS = [
    "ConfigMap/goqueue-config", "NetworkPolicy/goqueue", "PodDisruptionBudget/goqueue", "Secret/goqueue-raft",
    "Service/goqueue", "Service/goqueue-headless", "Service/goqueue-metrics", "StatefulSet/goqueue",
]
SELECTOR = {"app.kubernetes.io/name": "goqueue", "app.kubernetes.io/instance": "goqueue",
            "app.kubernetes.io/component": "broker"}


@pytest.fixture(scope="module")
def runbook(helm: Helm) -> Rendered:
    """What the runbook's `helm install goqueue … -n goqueue --set …` creates (the `helm test` Pod only `helm test`
    does: test_goqueue_chart_extras.py)."""
    return helm.template(*RUNBOOK_INSTALL, "--skip-tests")


def broker(rendered: Rendered, name: str = "goqueue") -> Obj:
    containers = rendered.get("StatefulSet", name)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["broker"]
    container: Obj = containers[0]
    return container


def env_of(container: Obj) -> dict[str, Any]:
    """name → value, or name → valueFrom."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_runbook_install_creates_the_runbook_names(runbook: Rendered) -> None:
    assert runbook.names() == RUNBOOK_OBJECTS


def test_claims_are_named_so_pods_get_goqueue_data_goqueue_n(runbook: Rendered) -> None:
    sts = runbook.get("StatefulSet", "goqueue")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "goqueue-data"  # → goqueue-data-goqueue-0, -1, -2
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]  # the cluster's default class
    mounts = {m["name"]: m["mountPath"] for m in broker(runbook)["volumeMounts"]}
    assert mounts["goqueue-data"] == "/data"  # the runbook's `df -h /data`
    retention = sts["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_brokers_start_in_parallel_under_the_headless_service(runbook: Rendered) -> None:
    spec = runbook.get("StatefulSet", "goqueue")["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"  # OrderedReady would wait for a quorum that never comes
    assert spec["serviceName"] == "goqueue-headless"
    assert spec["selector"]["matchLabels"] == SELECTOR


def test_brokers_listen_on_all_addresses_and_find_peers_by_dns(runbook: Rendered) -> None:
    """0.0.0.0: the NOTES' and runbook's `kubectl exec … goqueue-cli` talk to localhost:8080 inside the pod."""
    env = env_of(broker(runbook))
    assert env["GOQUEUE_BROKER_HOST"] == "0.0.0.0"
    assert env["GOQUEUE_CLUSTER_PEERS"] == ",".join(
        f"goqueue-{i}.goqueue-headless.goqueue.svc.cluster.local:7000" for i in range(3))
    assert env["GOQUEUE_BROKER_ADVERTISEDHOST"] == "$(POD_NAME).goqueue-headless.$(POD_NAMESPACE).svc.cluster.local"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "GOQUEUE_BROKER_ID" not in env  # the hostname's ordinal (goqueue-2 → 2) is the broker id


def test_network_bind_pod_ip_binds_only_the_pod_address(helm: Helm) -> None:
    env = env_of(broker(helm.template("--set", "network.bind=PodIP")))
    assert env["GOQUEUE_BROKER_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert "network/bind" in helm.refusal("--set", "network.bind=Host")


def test_peers_follow_release_namespace_replicas_and_ports(helm: Helm) -> None:
    rendered = helm.template("--set", "replicaCount=5", "--set", "pdb.maxUnavailable=2", "--set",
                             "config.broker.raftPort=7100", "--set", "clusterDomain=k8s.example",
                             release="prod", namespace="queues")
    env = env_of(broker(rendered, "prod-goqueue"))
    assert env["GOQUEUE_CLUSTER_PEERS"].split(",") == [
        f"prod-goqueue-{i}.prod-goqueue-headless.queues.svc.k8s.example:7100" for i in range(5)]
    headless = rendered.get("Service", "prod-goqueue-headless")
    assert {p["name"]: p["port"] for p in headless["spec"]["ports"]}["raft"] == 7100


def volumes_of(rendered: Rendered, name: str = "goqueue") -> dict[str, Any]:
    return {v["name"]: v for v in rendered.get("StatefulSet", name)["spec"]["template"]["spec"]["volumes"]}


def test_the_raft_password_comes_from_the_generated_secret(runbook: Rendered) -> None:
    """As a file from the Secret, read-only (cluster.passwordFile): no environment variable holds it."""
    assert "GOQUEUE_CLUSTER_PASSWORD" not in env_of(broker(runbook))
    assert volumes_of(runbook)["cluster-password"]["secret"]["secretName"] == "goqueue-raft"
    mounts = {m["name"]: m for m in broker(runbook)["volumeMounts"]}
    assert mounts["cluster-password"] == {"name": "cluster-password", "mountPath": "/var/run/goqueue/cluster",
                                          "readOnly": True}
    settings = yaml.safe_load(runbook.get("ConfigMap", "goqueue-config")["data"]["goqueue.yaml"])
    assert settings["cluster"] == {"passwordFile": "/var/run/goqueue/cluster/password"}
    password = base64.b64decode(runbook.get("Secret", "goqueue-raft")["data"]["password"]).decode()
    assert len(password) >= 32
    assert password.isalnum()


def test_a_given_password_or_an_existing_secret_is_used(helm: Helm) -> None:
    given = helm.template("--set", "cluster.password=s3cret-enough")
    assert base64.b64decode(given.get("Secret", "goqueue-raft")["data"]["password"]) == b"s3cret-enough"
    existing = helm.template("--set", "cluster.existingSecret=corp-raft")
    assert existing.of_kind("Secret") == []
    assert volumes_of(existing)["cluster-password"]["secret"]["secretName"] == "corp-raft"


def test_the_broker_runs_with_the_mounted_settings_file(runbook: Rendered) -> None:
    container = broker(runbook)
    assert container["command"] == ["goqueue-broker"]
    assert container["args"] == ["--config", "/etc/goqueue/goqueue.yaml"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/goqueue"
    assert mounts["config"]["readOnly"] is True
    volumes = {v["name"]: v for v in runbook.get("StatefulSet", "goqueue")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "goqueue-config"
    assert "emptyDir" in volumes["tmp"]  # the root filesystem is read-only


def test_the_settings_file_holds_the_runbook_keys_and_the_broker_accepts_it(runbook: Rendered,
                                                                             tmp_path: Path) -> None:
    text = runbook.get("ConfigMap", "goqueue-config")["data"]["goqueue.yaml"]
    assert yaml.safe_load(text) == {
        "broker": {"port": 8080, "grpcPort": 9000, "raftPort": 7000, "internalPort": 8081, "shutdownGrace": "50s"},
        "storage": {"dataDir": "/data", "walDir": "/data/wal", "fsync": "always"},
        "retention": {"maxAge": "168h", "maxSize": "10GB"},
        "replication": {"minInsyncReplicas": 2},
        "security": {"allowAnonymous": True},  # explicit until the chart manages users (docs/SECURITY.md)
        "cluster": {"passwordFile": "/var/run/goqueue/cluster/password"},
        "log": {"level": "info", "format": "json"},
    }
    (tmp_path / "password").write_text("from-the-secret\n")  # the Secret's file, where this test can put it
    (tmp_path / "goqueue.yaml").write_text(text.replace("/var/run/goqueue/cluster", str(tmp_path)))
    env = env_of(broker(runbook))
    settings = load_settings(tmp_path / "goqueue.yaml", {  # what broker goqueue-1 sees in its pod
        "GOQUEUE_BROKER_ID": "1", "GOQUEUE_BROKER_HOST": "10.1.2.3", "GOQUEUE_CLUSTER_PEERS": env[
            "GOQUEUE_CLUSTER_PEERS"]})
    assert settings.cluster.password == "from-the-secret"
    assert settings.raft_addresses()[0] == "goqueue-1.goqueue-headless.goqueue.svc.cluster.local:7000"
    assert settings.broker.shutdown_grace_s == 50.0
    assert settings.retention.max_age_s == 168 * 3600


def test_a_null_key_is_left_to_the_broker_default(helm: Helm) -> None:
    rendered = helm.template("--set", "config.retention.maxSize=null", "--set", "config.consumers.maxDeliveries=9")
    settings = yaml.safe_load(rendered.get("ConfigMap", "goqueue-config")["data"]["goqueue.yaml"])
    assert "maxSize" not in settings["retention"]
    assert settings["consumers"] == {"maxDeliveries": 9}


def test_a_settings_change_rolls_the_brokers_and_other_changes_do_not(helm: Helm, runbook: Rendered) -> None:
    def checksum(rendered: Rendered) -> str:
        annotations = rendered.get("StatefulSet", "goqueue")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum(helm.template(*RUNBOOK_INSTALL, "--set", "config.retention.maxAge=24h")) != checksum(runbook)
    assert checksum(helm.template(*RUNBOOK_INSTALL, "--set", "pdb.maxUnavailable=0")) == checksum(runbook)


def test_resources_are_the_runbook_values(runbook: Rendered) -> None:
    assert broker(runbook)["resources"] == {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}


def test_probes_use_healthz_and_readyz_on_the_http_port(runbook: Rendered) -> None:
    container = broker(runbook)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "grpc": 9000, "raft": 7000, "internal": 8081}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "scheme": "HTTP"}
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 600
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "scheme": "HTTP"}


def test_brokers_run_as_non_root_with_a_read_only_root(runbook: Rendered) -> None:
    pod = runbook.get("StatefulSet", "goqueue")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's goqueue user (Dockerfile.broker)
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["automountServiceAccountToken"] is False
    container = broker(runbook)["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_brokers_spread_over_nodes_and_get_time_to_drain(helm: Helm, runbook: Rendered) -> None:
    pod = runbook.get("StatefulSet", "goqueue")["spec"]["template"]["spec"]
    (preferred,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["podAffinityTerm"]["labelSelector"]["matchLabels"] == SELECTOR
    assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["terminationGracePeriodSeconds"] == 60
    hard = helm.template("--set", "antiAffinity=hard", "--set", "antiAffinityTopologyKey=topology.kubernetes.io/zone")
    (required,) = hard.get("StatefulSet", "goqueue")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["topologyKey"] == "topology.kubernetes.io/zone"
    assert "affinity" not in helm.template("--set", "antiAffinity=none").get(
        "StatefulSet", "goqueue")["spec"]["template"]["spec"]


def test_services(runbook: Rendered) -> None:
    client = runbook.get("Service", "goqueue")["spec"]
    assert client["selector"] == SELECTOR
    assert client["type"] == "ClusterIP"
    assert {p["name"]: (p["port"], p["targetPort"]) for p in client["ports"]} == {
        "http": (8080, "http"), "grpc": (9000, "grpc")}
    headless = runbook.get("Service", "goqueue-headless")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True  # peers must resolve before any broker is ready
    assert headless["selector"] == SELECTOR
    # Brokers reach each other by pod DNS name: the Raft and internal ports are on the headless Service only.
    assert {p["name"] for p in headless["ports"]} == {"http", "grpc", "raft", "internal"}
    metrics = runbook.get("Service", "goqueue-metrics")
    # The runbook: kubectl port-forward svc/goqueue-metrics 9000:9000; curl localhost:9000/metrics
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 9000, "targetPort": "http", "protocol": "TCP"}]
    assert metrics["metadata"]["labels"][operator_labels.SERVICE_ROLE] == "metrics"


def test_the_metrics_service_is_optional(helm: Helm) -> None:
    assert "Service/goqueue-metrics" not in helm.template("--set", "metrics.enabled=false").names()


def test_the_pdb_lets_a_drain_take_one_broker_of_three(runbook: Rendered) -> None:
    pdb = runbook.get("PodDisruptionBudget", "goqueue")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"] == SELECTOR
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_every_object_carries_the_operators_label_keys(runbook: Rendered) -> None:
    for obj in runbook.objects:
        found = obj["metadata"]["labels"]
        assert found[operator_labels.NAME] == operator_labels.APP, obj["metadata"]["name"]
        assert found[operator_labels.INSTANCE] == "goqueue"
        assert found[operator_labels.COMPONENT] == operator_labels.BROKER_COMPONENT
        assert found[operator_labels.PART_OF] == operator_labels.APP
        assert found[operator_labels.MANAGED_BY] == "Helm"
    # The selector is the operator's selector for a cluster named like the release.
    assert operator_labels.selector_labels("goqueue") == SELECTOR
    pod_labels = runbook.get("StatefulSet", "goqueue")["spec"]["template"]["metadata"]["labels"]
    assert SELECTOR.items() <= pod_labels.items()
    assert "helm.sh/chart" not in pod_labels  # a chart upgrade alone must not restart every broker


def test_image_tag_defaults_to_the_app_version_and_a_digest_wins(helm: Helm, runbook: Rendered) -> None:
    assert broker(runbook)["image"] == "ghcr.io/goqueue/goqueue:0.1.0"
    digest = "sha256:" + "ab" * 32
    pinned = helm.template("--set", "image.repository=registry.local/goqueue", "--set", f"image.digest={digest}")
    assert broker(pinned)["image"] == f"registry.local/goqueue@{digest}"


def test_storage_class_and_extra_env(helm: Helm) -> None:
    rendered = helm.template("--set", "persistence.storageClass=fast-ssd",
                             "--set", "extraEnv[0].name=GOQUEUE_LOG_LEVEL", "--set", "extraEnv[0].value=debug")
    (claim,) = rendered.get("StatefulSet", "goqueue")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert env_of(broker(rendered))["GOQUEUE_LOG_LEVEL"] == "debug"


def ingress_rules(rendered: Rendered) -> list[tuple[set[int], list[Obj] | None]]:
    """(ports, sources) of each NetworkPolicy rule; sources None: from anywhere."""
    policy = rendered.get("NetworkPolicy", "goqueue")["spec"]
    assert policy["podSelector"] == {"matchLabels": SELECTOR}
    assert policy["policyTypes"] == ["Ingress"]
    return [({p["port"] for p in rule["ports"]}, rule.get("from")) for rule in policy["ingress"]]


def namespaces(sources: list[Obj] | None) -> set[str]:
    assert sources is not None
    return {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in sources}


def test_the_network_policy_admits_only_brokers_to_raft_and_internal_ports(runbook: Rendered) -> None:
    rules = ingress_rules(runbook)
    assert rules[0] == ({7000, 8081}, [{"podSelector": {"matchLabels": SELECTOR}}])
    assert rules[1] == ({8080, 9000}, None)  # clients: any source by default
    assert rules[2][0] == {8080}  # /metrics
    assert namespaces(rules[2][1]) == {"monitoring"}
    assert len(rules) == 3  # no other rule opens the Raft or internal port
    for service in ("goqueue", "goqueue-metrics"):
        ports = {p.get("targetPort") for p in runbook.get("Service", service)["spec"]["ports"]}
        assert ports.isdisjoint({"raft", "internal", 7000, 8081}), service


def test_client_and_metrics_namespaces_are_configurable(helm: Helm) -> None:
    rendered = helm.template(*RUNBOOK_INSTALL, "--set", "networkPolicy.clientNamespaces={apps,batch}",
                             "--set", "networkPolicy.metricsNamespaces={observability}")
    rules = ingress_rules(rendered)
    assert rules[1][0] == {8080, 9000}
    assert namespaces(rules[1][1]) == {"goqueue", "apps", "batch"}
    assert namespaces(rules[2][1]) == {"observability"}
    off = helm.template(*RUNBOOK_INSTALL, "--set", "networkPolicy.enabled=false")
    assert "NetworkPolicy/goqueue" not in off.names()
