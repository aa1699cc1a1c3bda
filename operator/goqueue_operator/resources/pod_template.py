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
    child_name,
    pod_dns_name,
)
from goqueue_operator.resources.tls import TlsPhase, tls_env, tls_mounts, tls_volumes
from goqueue_operator.users import principal
from goqueue_operator.views import ClusterView

RUN_AS = 10001  # the image's goqueue user (Dockerfile.broker)


def peer_addresses(cluster: ClusterView, replicas: int) -> list[str]:
    """host:raftPort of every broker, by its stable DNS name under the headless Service."""
    return [f"{pod_dns_name(cluster.name, cluster.namespace, i, cluster.cluster_domain)}:{ports.RAFT_PORT}"
            for i in range(replicas)]


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def broker_env(cluster: ClusterView, replicas: int, tls: TlsPhase) -> list[dict[str, Any]]:
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
        # A path, never the password: a variable's value is readable in /proc/<pid>/environ (docs/SECURITY.md).
        {"name": "GOQUEUE_CLUSTER_PASSWORDFILE", "value": f"{ports.RAFT_PASSWORD_DIR}/{RAFT_PASSWORD_KEY}"},
        *_operator_principal(),
        *tls_env(cluster, tls),
    ]


RAFT_SECRET_VOLUME = "raft-secret"


def raft_secret_volume(cluster: ClusterView) -> dict[str, Any]:
    return {"name": RAFT_SECRET_VOLUME, "secret": {
        "secretName": child_name(cluster.name, "raft-secret"), "defaultMode": 0o440,
        "items": [{"key": RAFT_PASSWORD_KEY, "path": RAFT_PASSWORD_KEY}]}}


def raft_secret_mount() -> dict[str, Any]:
    return {"name": RAFT_SECRET_VOLUME, "mountPath": ports.RAFT_PASSWORD_DIR, "readOnly": True}


OPERATOR_CREDENTIALS_VOLUME = "operator-credentials"


def _operator_principal() -> list[dict[str, Any]]:
    """The operator's own principal (users/principal.py) is the brokers' configured administrator, so anonymous
    access can stay off (its default with peers; spec.config may still turn it on). The in-pod CLIs act as it too
    (GOQUEUE_USER, GOQUEUE_PASSWORD_FILE), so the runbook's `kubectl exec goqueue-0 -- goqueue-cli …` runs
    unchanged: whoever may exec into a broker already holds the Raft password and the data (docs/SECURITY.md)."""
    return [
        {"name": "GOQUEUE_SECURITY_ADMINUSER", "value": principal.OPERATOR_USER},
        {"name": "GOQUEUE_SECURITY_ADMINPASSWORDFILE", "value": principal.PASSWORD_FILE},
        {"name": "GOQUEUE_USER", "value": principal.OPERATOR_USER},
        {"name": "GOQUEUE_PASSWORD_FILE", "value": principal.PASSWORD_FILE},
    ]


def operator_credentials_volume(cluster: ClusterView) -> dict[str, Any]:
    return {"name": OPERATOR_CREDENTIALS_VOLUME, "secret": {
        "secretName": principal.secret_name(cluster.name), "defaultMode": 0o440,
        "items": [{"key": principal.PASSWORD_KEY, "path": principal.PASSWORD_KEY}]}}


def operator_credentials_mount() -> dict[str, Any]:
    return {"name": OPERATOR_CREDENTIALS_VOLUME, "mountPath": principal.MOUNT_DIR, "readOnly": True}


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


def broker_container(cluster: ClusterView, replicas: int, tls: TlsPhase) -> dict[str, Any]:
    spec = cluster.spec
    https = tls.client_listeners
    return {
        "name": BROKER_CONTAINER,
        "image": cluster.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["goqueue-broker", "--config", ports.CONFIG_FILE],
        "ports": ports.container_ports(),
        "env": broker_env(cluster, replicas, tls),
        "resources": {"requests": dict(spec.resources.requests), "limits": dict(spec.resources.limits)},
        "startupProbe": probes.startup_probe(tls=https),
        "readinessProbe": probes.readiness_probe(tls=https),
        "livenessProbe": probes.liveness_probe(tls=https),
        "volumeMounts": [
            {"name": DATA_CLAIM_TEMPLATE, "mountPath": ports.DATA_DIR},
            {"name": "config", "mountPath": ports.CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": ports.TMP_DIR},
            *tls_mounts(tls),
            raft_secret_mount(),
            operator_credentials_mount(),
        ],
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def build_pod_template(cluster: ClusterView, replicas: int, tls: TlsPhase | None = None) -> dict[str, Any]:
    """`tls`: where turning TLS on or off stands (pki/phase.py); default: spec.tls as it is."""
    tls = TlsPhase.of(cluster) if tls is None else tls
    pod = cluster.spec.pod
    template_labels = {**pod.labels, **labels.common_labels(cluster.name, cluster.spec.version)}
    annotations = {**pod.annotations, labels.CONFIG_HASH_ANNOTATION: config_hash(cluster)}
    spec: dict[str, Any] = {
        "containers": [broker_container(cluster, replicas, tls)],
        "volumes": [
            {"name": "config", "configMap": {"name": child_name(cluster.name, "config")}},
            {"name": "tmp", "emptyDir": {}},
            *tls_volumes(cluster, tls),
            raft_secret_volume(cluster),
            operator_credentials_volume(cluster),
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
