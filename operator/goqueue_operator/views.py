"""Typed views of the custom resources: parse a CR body once, then every other module reads fields, not dicts.

The spec models mirror the CRDs in crds/ field for field (camelCase aliases), and their defaults are the CRDs'
defaults; `tests/unit/operator/test_operator_views.py` checks both directions, so a field added to one and not
the other fails the build. Status is parsed only for the state the operator persists there on purpose (roll,
resize and drain progress; applied offset resets): everything else in status is recomputed on every reconcile.

A body that does not parse raises `SpecError`; handlers turn it into `kopf.PermanentError` (retrying cannot help).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from goqueue_operator.resources import labels

JSON = dict[str, Any]


class SpecError(ValueError):
    """The custom resource does not parse; the message names the field."""


class _Crd(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class _Record(BaseModel):
    """Status the operator wrote itself: unknown keys (computed fields) are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


# -- GoQueueCluster ----------------------------------------------------------------------------------------------

class StorageSpec(_Crd):
    size: str = "10Gi"
    storage_class_name: str | None = None


def _default_requests() -> dict[str, int | str]:
    return {"cpu": "500m", "memory": "1Gi"}


def _default_limits() -> dict[str, int | str]:
    return {"memory": "2Gi"}  # no CPU limit: throttling a broker delays replication and fsync


class ResourcesSpec(_Crd):
    requests: dict[str, int | str] = Field(default_factory=_default_requests)
    limits: dict[str, int | str] = Field(default_factory=_default_limits)


class NetworkSpec(_Crd):
    bind: Literal["All", "PodIP"] = "All"


class NetworkPolicySpec(_Crd):
    enabled: bool = True
    client_namespaces: list[str] = Field(default_factory=list)
    metrics_namespaces: list[str] = Field(default_factory=lambda: ["monitoring"])


class PodSpec(_Crd):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[JSON] = Field(default_factory=list)
    priority_class_name: str | None = None
    service_account_name: str | None = None
    termination_grace_period_seconds: int = 60
    anti_affinity: Literal["Preferred", "Required", "None"] = "Preferred"
    topology_key: str = "kubernetes.io/hostname"


class DisruptionBudgetSpec(_Crd):
    max_unavailable: int = 1


class RolloutSpec(_Crd):
    min_delay_seconds: int = 10
    stall_timeout_seconds: int = 600


class ScalingSpec(_Crd):
    auto_drain: bool = False
    rebalance_on_scale_up: bool = False


class MonitoringSpec(_Crd):
    service_monitor: bool = True
    prometheus_rule: bool = True
    scrape_interval: str = "30s"


class IssuerRef(_Crd):
    name: str
    kind: Literal["Issuer", "ClusterIssuer"] = "Issuer"
    group: str = "cert-manager.io"


class TlsSpec(_Crd):
    enabled: bool = False
    internal: bool = True  # the internal listener (broker to broker) over mutual TLS, even with `enabled` false
    issuer: Literal["SelfSigned", "CertManager"] = "SelfSigned"
    issuer_ref: IssuerRef | None = None
    validity_days: int = Field(365, ge=1)
    renew_before_days: int = Field(30, ge=1)
    ca_validity_days: int = Field(1825, ge=1)
    ca_renew_before_days: int = Field(180, ge=1)
    client_auth: Literal["none", "requested", "required"] = "requested"


class ClusterSpec(_Crd):
    replicas: int = Field(3, ge=0)
    version: str = "0.1.0"
    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list)
    storage: StorageSpec = StorageSpec()
    resources: ResourcesSpec = ResourcesSpec()
    config: dict[str, str] = Field(default_factory=dict)
    network: NetworkSpec = NetworkSpec()
    network_policy: NetworkPolicySpec = NetworkPolicySpec()
    pod: PodSpec = PodSpec()
    disruption_budget: DisruptionBudgetSpec = DisruptionBudgetSpec()
    rollout: RolloutSpec = RolloutSpec()
    scaling: ScalingSpec = ScalingSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    tls: TlsSpec = TlsSpec()


class RolloutRecord(_Record):
    current_pod: str | None = None
    step: str | None = None
    blocked_reason: str | None = None
    waiting_for: str | None = None
    since: datetime | None = None
    last_restart_at: datetime | None = None
    last_caught_up_at: datetime | None = None


class StorageRecord(_Record):
    size: str | None = None
    target_size: str | None = None
    phase: str | None = None
    message: str | None = None


class ScalingRecord(_Record):
    phase: str | None = None
    from_replicas: int | None = Field(None, alias="from")
    to: int | None = None
    message: str | None = None
    since: datetime | None = None


class ClusterRecord(_Record):
    rollout: RolloutRecord = RolloutRecord()
    storage: StorageRecord = StorageRecord()
    scaling: ScalingRecord = ScalingRecord()
    conditions: list[JSON] = Field(default_factory=list)
    phase: str | None = None


# -- GoQueueTopic and GoQueueConsumerGroup -----------------------------------------------------------------------

class ClusterRef(_Crd):
    name: str


class TopicConfigSpec(_Crd):
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_max_age: str | None = None
    retention_max_size: str | None = None
    max_message_bytes: str | None = None
    min_insync_replicas: int | None = None
    tombstone_retention: str | None = None
    segment_bytes: str | None = None
    unclean_leader_election: bool = False


class TopicSpec(_Crd):
    cluster_ref: ClusterRef
    topic_name: str | None = None
    partitions: int = Field(1, ge=1)
    replication_factor: int = Field(3, ge=1)
    config: TopicConfigSpec = TopicConfigSpec()
    throttle_bytes_per_second: int | None = Field(None, ge=1024)
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    delete_if_empty: bool = False


class OffsetResetSpec(_Crd):
    id: str
    topic: str
    partition: int | None = Field(None, ge=0)
    to: Literal["earliest", "latest", "offset", "timestamp"]
    offset: int | None = Field(None, ge=0)
    timestamp: datetime | None = None
    force: bool = False


class GroupSpec(_Crd):
    cluster_ref: ClusterRef
    group_name: str | None = None
    mode: Literal["shared", "ordered"] = "shared"
    topics: list[str] = Field(default_factory=list)
    paused: bool = False
    visibility_timeout: str | None = None
    max_deliveries: int | None = None
    inflight_capacity: int | None = None
    session_timeout: str | None = None
    dead_letter_topic: str | None = None
    auto_offset_reset: Literal["earliest", "latest"] | None = None
    assignor: Literal["range", "sticky"] | None = None
    offset_resets: list[OffsetResetSpec] = Field(default_factory=list)
    deletion_policy: Literal["Retain", "Delete"] = "Retain"


class PartitionOffset(_Record):
    topic: str
    partition: int
    offset: int


class AppliedReset(_Record):
    id: str
    phase: str
    time: datetime | None = None
    message: str | None = None
    partitions: list[PartitionOffset] = Field(default_factory=list)


class GroupRecord(_Record):
    offset_resets: list[AppliedReset] = Field(default_factory=list)
    conditions: list[JSON] = Field(default_factory=list)


# -- views -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str
    uid: str
    generation: int
    annotations: dict[str, str]
    creation_timestamp: str
    deletion_timestamp: str | None

    @classmethod
    def from_body(cls, body: JSON) -> ObjectMeta:
        meta = body.get("metadata", {})
        return cls(name=meta["name"], namespace=meta.get("namespace", ""), uid=meta.get("uid", ""),
                   generation=int(meta.get("generation", 0)), annotations=dict(meta.get("annotations") or {}),
                   creation_timestamp=str(meta.get("creationTimestamp", "")),
                   deletion_timestamp=meta.get("deletionTimestamp"))

    def flag(self, annotation: str) -> bool:
        return self.annotations.get(annotation, "").strip().lower() in {"true", "yes", "1"}


def _parse(model: type[_Crd] | type[_Record], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"])
        raise SpecError(f"{where}.{loc}: {error['msg']}" if loc else f"{where}: {error['msg']}") from exc


@dataclass(frozen=True)
class ClusterView:
    """A GoQueueCluster, plus the two operator settings its children depend on."""

    meta: ObjectMeta
    spec: ClusterSpec
    record: ClusterRecord
    image_repository: str = "ghcr.io/goqueue/goqueue"
    cluster_domain: str = "cluster.local"

    @classmethod
    def from_body(cls, body: JSON, *, image_repository: str = "ghcr.io/goqueue/goqueue",
                  cluster_domain: str = "cluster.local") -> ClusterView:
        return cls(meta=ObjectMeta.from_body(body), spec=_parse(ClusterSpec, body.get("spec"), "spec"),
                   record=_parse(ClusterRecord, body.get("status"), "status"),
                   image_repository=image_repository, cluster_domain=cluster_domain)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def image(self) -> str:
        return self.spec.image or f"{self.image_repository}:{self.spec.version}"

    @property
    def paused(self) -> bool:
        return self.meta.flag(labels.PAUSED_ANNOTATION)

    @property
    def rollout_paused(self) -> bool:
        return self.meta.flag(labels.ROLLOUT_PAUSED_ANNOTATION)

    @property
    def applied_storage_size(self) -> str:
        """The claim template size the StatefulSet has (it is immutable there): recorded in status, else spec."""
        return self.record.storage.size or self.spec.storage.size


@dataclass(frozen=True)
class TopicView:
    meta: ObjectMeta
    spec: TopicSpec

    @classmethod
    def from_body(cls, body: JSON) -> TopicView:
        return cls(meta=ObjectMeta.from_body(body), spec=_parse(TopicSpec, body.get("spec"), "spec"))

    @property
    def broker_name(self) -> str:
        """The topic's name on the brokers."""
        return self.spec.topic_name or self.meta.name

    @property
    def cluster_name(self) -> str:
        return self.spec.cluster_ref.name

    @property
    def deletion_policy(self) -> str:
        return self.spec.deletion_policy


@dataclass(frozen=True)
class GroupView:
    meta: ObjectMeta
    spec: GroupSpec
    record: GroupRecord

    @classmethod
    def from_body(cls, body: JSON) -> GroupView:
        return cls(meta=ObjectMeta.from_body(body), spec=_parse(GroupSpec, body.get("spec"), "spec"),
                   record=_parse(GroupRecord, body.get("status"), "status"))

    @property
    def broker_name(self) -> str:
        """The group's name on the brokers."""
        return self.spec.group_name or self.meta.name

    @property
    def cluster_name(self) -> str:
        return self.spec.cluster_ref.name

    @property
    def deletion_policy(self) -> str:
        return self.spec.deletion_policy
