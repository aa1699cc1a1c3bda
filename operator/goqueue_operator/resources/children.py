"""All children of a GoQueueCluster, in the order they are applied.

Why this order: the Secret and the ConfigMap come before the StatefulSet, because its pods read them at start
(an absent Secret leaves a pod in CreateContainerConfigError); the headless Service comes before the pods so their
DNS names exist when brokers look up their peers; the PDB comes before pods exist so no eviction ever finds them
unprotected, and the NetworkPolicy so no pod is ever reachable beyond it; monitoring objects come last because they
are optional (applied only when their CRDs exist).
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources.configmap import build_configmap
from goqueue_operator.resources.monitoring import MONITORING_API, build_prometheus_rule, build_service_monitor
from goqueue_operator.resources.network_policy import build_network_policy
from goqueue_operator.resources.operator_secret import build_operator_secret
from goqueue_operator.resources.pdb import build_pdb
from goqueue_operator.resources.secret import build_secret
from goqueue_operator.resources.services import build_client_service, build_headless_service, build_metrics_service
from goqueue_operator.resources.statefulset import build_statefulset
from goqueue_operator.resources.tls import TlsPhase
from goqueue_operator.views import ClusterView

# Applied with create (never overwritten): the Raft and operator passwords are generated once (resources/secret.py,
# resources/operator_secret.py).
CREATE_ONLY_KINDS = frozenset({"Secret"})
# Applied only when the API server serves them (their CRDs may not be installed).
OPTIONAL_APIS = frozenset({MONITORING_API})


def build_cluster_children(cluster: ClusterView, *, password: str, operator_password: str,
                           replicas: int | None = None, claim_size: str | None = None,
                           tls: TlsPhase | None = None) -> list[dict[str, Any]]:
    children = [
        build_secret(cluster, password),
        build_operator_secret(cluster, operator_password),
        build_configmap(cluster),
        build_headless_service(cluster),
        build_client_service(cluster),
        build_metrics_service(cluster),
        build_pdb(cluster, replicas),
        build_network_policy(cluster),
        build_statefulset(cluster, replicas=replicas, claim_size=claim_size, tls=tls),
    ]
    if cluster.spec.monitoring.service_monitor:
        children.append(build_service_monitor(cluster))
    if cluster.spec.monitoring.prometheus_rule:
        children.append(build_prometheus_rule(cluster))
    return children
