"""The broker pod template: one container running `goqueue-broker --config /etc/goqueue/goqueue.yaml`.

Everything here is a pure function of the cluster spec (and the replica count for the peer list), never of the
operator's own version: upgrading the operator must not change the template, or it would roll every broker.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources import labels, ports, probes
from goqueue_operator.resources.configmap import config_hash
from goqueue_operator.resources.names import (
    BROKER_CONTAINER,
    DATA_CLAIM_TEMPLATE,
    RAFT_PASSWORD_KEY,
    TLS_CA_KEY,
    TLS_CERT_KEY,
    TLS_KEY_KEY,
    TLS_VOLUME,
    child_name,
    pod_dns_name,
)
from goqueue_operator.views import ClusterView

RUN_AS = 10001  # the image's goqueue user (Dockerfile.broker)
TLS_CERT_ENV = "GOQUEUE_TLS_CERTFILE"  # set: the broker serves TLS (observed.py reads pods by it)


def peer_addresses(cluster: ClusterView, replicas: int) -> list[str]:
    """host:raftPort of every broker, by its stable DNS name under the headless Service."""
    return [f"{pod_dns_name(cluster.name, cluster.namespace, i, cluster.cluster_domain)}:{ports.RAFT_PORT}"
            for i in range(replicas)]


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def broker_env(cluster: ClusterView, replicas: int) -> list[dict[str, Any]]:
    """Per-pod settings as GOQUEUE_* variables (they win over the mounted file)."""
    headless = child_name(cluster.name, "headless")
    advertised = f"$(POD_NAME).{headless}.{cluster.namespace}.svc.{cluster.cluster_domain}"
    bind = "$(POD_IP)" if cluster.spec.network.bind == "PodIP" else "0.0.0.0"
    return [
        _field("POD_NAME", "metadata.name"),
        _field("POD_NAMESPACE", "metadata.namespace"),
        _field("POD_IP", "status.podIP"),
        _field("GOQUEUE_BROKER_ID", f"metadata.labels['{labels.POD_INDEX}']"),
        {"name": "GOQUEUE_BROKER_HOST", "value": bind},
        {"name": "GOQUEUE_BROKER_ADVERTISEDHOST", "value": advertised},
        # Not in the settings file: a broker of a version without the internal listener refuses unknown keys
        # there, and ignores unknown variables (spec.version may lag the operator).
        {"name": "GOQUEUE_BROKER_INTERNALPORT", "value": str(ports.INTERNAL_PORT)},
        {"name": "GOQUEUE_CLUSTER_PEERS", "value": ",".join(peer_addresses(cluster, replicas))},
        {"name": "GOQUEUE_CLUSTER_PASSWORD", "valueFrom": {"secretKeyRef": {
            "name": child_name(cluster.name, "raft-secret"), "key": RAFT_PASSWORD_KEY}}},
        *_anonymous_access(cluster),
        *tls_env(cluster),
    ]


def _anonymous_access(cluster: ClusterView) -> list[dict[str, Any]]:
    """Anonymous access stays on until the operator has a principal of its own (the GoQueueUser work,
    docs/SECURITY.md), unless spec.config decides: a variable, as the internal port, and only then (it would win)."""
    if "security.allowAnonymous" in cluster.spec.config:
        return []
    return [{"name": "GOQUEUE_SECURITY_ALLOWANONYMOUS", "value": "true"}]


def tls_env(cluster: ClusterView) -> list[dict[str, Any]]:
    """The broker's TLS files (paths only: the key stays in the mounted Secret) and client-certificate policy;
    TLS is on when the certificate file is set (docs/SECURITY.md, "TLS")."""
    if not cluster.spec.tls.enabled:
        return []
    return [
        {"name": TLS_CERT_ENV, "value": f"{ports.TLS_DIR}/{TLS_CERT_KEY}"},
        {"name": "GOQUEUE_TLS_KEYFILE", "value": f"{ports.TLS_DIR}/{TLS_KEY_KEY}"},
        {"name": "GOQUEUE_TLS_CAFILE", "value": f"{ports.TLS_DIR}/{TLS_CA_KEY}"},
        {"name": "GOQUEUE_TLS_CLIENTAUTH", "value": cluster.spec.tls.client_auth},
    ]


def tls_mounts(cluster: ClusterView) -> list[dict[str, Any]]:
    return [{"name": TLS_VOLUME, "mountPath": ports.TLS_DIR, "readOnly": True}] if cluster.spec.tls.enabled else []


def tls_volumes(cluster: ClusterView) -> list[dict[str, Any]]:
    """The broker-tls Secret, whichever issuer fills it; 0440: root-owned files, group fsGroup (the broker's).
    A Secret volume follows the Secret's updates, so renewed certificates reach running brokers."""
    if not cluster.spec.tls.enabled:
        return []
    return [{"name": TLS_VOLUME, "secret": {"secretName": child_name(cluster.name, "broker-tls"),
                                            "defaultMode": 0o440}}]


def affinity(cluster: ClusterView) -> dict[str, Any] | None:
    """Spread brokers over failure domains: a node loss should take one broker, not the quorum."""
    mode = cluster.spec.pod.anti_affinity
    if mode == "None":
        return None
    term = {"labelSelector": {"matchLabels": labels.selector_labels(cluster.name)},
            "topologyKey": cluster.spec.pod.topology_key}
    if mode == "Required":
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term}]}}


def pod_security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def broker_container(cluster: ClusterView, replicas: int) -> dict[str, Any]:
    spec = cluster.spec
    return {
        "name": BROKER_CONTAINER,
        "image": cluster.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["goqueue-broker", "--config", ports.CONFIG_FILE],
        "ports": ports.container_ports(),
        "env": broker_env(cluster, replicas),
        "resources": {"requests": dict(spec.resources.requests), "limits": dict(spec.resources.limits)},
        "startupProbe": probes.startup_probe(tls=spec.tls.enabled),
        "readinessProbe": probes.readiness_probe(tls=spec.tls.enabled),
        "livenessProbe": probes.liveness_probe(tls=spec.tls.enabled),
        "volumeMounts": [
            {"name": DATA_CLAIM_TEMPLATE, "mountPath": ports.DATA_DIR},
            {"name": "config", "mountPath": ports.CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": ports.TMP_DIR},
            *tls_mounts(cluster),
        ],
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def build_pod_template(cluster: ClusterView, replicas: int) -> dict[str, Any]:
    pod = cluster.spec.pod
    template_labels = {**pod.labels, **labels.common_labels(cluster.name, cluster.spec.version)}
    annotations = {**pod.annotations, labels.CONFIG_HASH_ANNOTATION: config_hash(cluster)}
    spec: dict[str, Any] = {
        "containers": [broker_container(cluster, replicas)],
        "volumes": [
            {"name": "config", "configMap": {"name": child_name(cluster.name, "config")}},
            {"name": "tmp", "emptyDir": {}},
            *tls_volumes(cluster),
        ],
        "securityContext": pod_security_context(),
        "terminationGracePeriodSeconds": pod.termination_grace_period_seconds,
        "enableServiceLinks": False,  # brokers need no *_SERVICE_HOST variables; they also slow pod start
    }
    if (rules := affinity(cluster)) is not None:
        spec["affinity"] = rules
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        spec["tolerations"] = [dict(t) for t in pod.tolerations]
    if pod.priority_class_name:
        spec["priorityClassName"] = pod.priority_class_name
    if pod.service_account_name:
        spec["serviceAccountName"] = pod.service_account_name
    if cluster.spec.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in cluster.spec.image_pull_secrets]
    return {"metadata": {"labels": template_labels, "annotations": annotations}, "spec": spec}
