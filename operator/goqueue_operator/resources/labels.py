"""Label and annotation keys, and the label sets of a cluster's objects.

Selector labels are a fixed subset of the common labels and never change for the life of a cluster (a
StatefulSet's selector is immutable); the version label is common but never a selector. The same keys are used by
the Helm charts' `_helpers.tpl`.
"""

from __future__ import annotations

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
VERSION = "app.kubernetes.io/version"
SERVICE_ROLE = "goqueue.io/service"  # headless | client | metrics: lets the ServiceMonitor pick one Service

APP = "goqueue"
BROKER_COMPONENT = "broker"
MANAGER = "goqueue-operator"

# Annotations on a GoQueueCluster (set by people) and on pod templates (set by the operator).
PAUSED_ANNOTATION = "goqueue.io/paused"  # "true": the operator changes nothing in this cluster
ROLLOUT_PAUSED_ANNOTATION = "goqueue.io/rollout-paused"  # "true": children are applied, no broker is restarted
RELEASE_FINALIZER_ANNOTATION = "goqueue.io/release-finalizer"  # "true": delete a topic/group CR, touch no broker
CONFIG_HASH_ANNOTATION = "goqueue.io/config-hash"  # on the pod template: a settings change is a new revision

# Set by Kubernetes on StatefulSet pods.
POD_INDEX = "apps.kubernetes.io/pod-index"
REVISION_HASH = "controller-revision-hash"


def selector_labels(cluster_name: str) -> dict[str, str]:
    """Labels that select a cluster's broker pods (`kubectl get pods -l app.kubernetes.io/name=goqueue`)."""
    return {NAME: APP, INSTANCE: cluster_name, COMPONENT: BROKER_COMPONENT}


def common_labels(cluster_name: str, version: str) -> dict[str, str]:
    """Labels on every object the operator creates for a cluster."""
    return {**selector_labels(cluster_name), PART_OF: APP, MANAGED_BY: MANAGER, VERSION: version}


def selector_string(cluster_name: str) -> str:
    """The selector as `kubectl -l` and the scale subresource's status.selector want it."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(cluster_name).items()))
