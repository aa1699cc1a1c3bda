"""What the operator observed of a cluster's pods, claims and StatefulSet, as plain facts for the pure planners.

Parsing Kubernetes objects happens here once; the roller, the resize and scaling planners and the status read
these facts and never a raw dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from goqueue_operator.resources import labels
from goqueue_operator.resources.names import ordinal_of
from goqueue_operator.resources.tls import TLS_CERT_ENV, TLS_LISTENERS_ENV

JSON = dict[str, Any]


def _condition(obj: Mapping[str, Any], kind: str) -> JSON | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            found: JSON = condition
            return found
    return None


def _tls_env(pod: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for c in pod.get("spec", {}).get("containers") or []
            for e in c.get("env") or [] if str(e.get("name", "")).startswith("GOQUEUE_TLS_")}


def _tls_listeners(env: Mapping[str, str]) -> frozenset[str]:
    """The listeners a pod's broker serves TLS on: with a certificate, GOQUEUE_TLS_LISTENERS or else all of them."""
    if TLS_CERT_ENV not in env:
        return frozenset()
    named = env.get(TLS_LISTENERS_ENV)
    return frozenset(("http", "grpc", "internal") if named is None else
                     (n.strip() for n in named.split(",") if n.strip()))


@dataclass(frozen=True)
class PodFacts:
    name: str
    ordinal: int
    uid: str
    ip: str | None
    ready: bool
    deleting: bool
    revision: str | None
    version: str | None
    tls: bool = False  # its client listeners speak TLS: it is called over https (pki/, resources/tls.py)
    internal_tls: bool = False  # its internal listener speaks TLS
    raft_tls: bool = False  # its Raft is TLS-only (with only a certificate, Raft offers TLS)
    certificate: bool = False  # it is given a certificate and the CA (whichever listeners use them)
    requires_client_certificate: bool = False  # GOQUEUE_TLS_CLIENTAUTH=required: callers must show a certificate

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> PodFacts | None:
        meta = pod["metadata"]
        ordinal = ordinal_of(meta["name"])
        if ordinal is None:
            return None
        ready = _condition(pod, "Ready")
        tls_env = _tls_env(pod)
        listeners = _tls_listeners(tls_env)
        pod_labels = meta.get("labels") or {}
        return cls(name=meta["name"], ordinal=ordinal, uid=meta.get("uid", ""),
                   ip=pod.get("status", {}).get("podIP"),
                   ready=bool(ready and ready.get("status") == "True") and not meta.get("deletionTimestamp"),
                   deleting=bool(meta.get("deletionTimestamp")), revision=pod_labels.get(labels.REVISION_HASH),
                   version=pod_labels.get(labels.VERSION), tls="http" in listeners,
                   internal_tls="internal" in listeners, raft_tls="raft" in listeners,
                   certificate=TLS_CERT_ENV in tls_env,
                   requires_client_certificate=tls_env.get("GOQUEUE_TLS_CLIENTAUTH") == "required")


@dataclass(frozen=True)
class ClaimFacts:
    name: str
    ordinal: int | None
    requested: str | None
    capacity: str | None
    resize_pending: bool  # FileSystemResizePending: the volume grew, the filesystem grows when a pod starts on it
    storage_class: str | None = None

    @classmethod
    def of(cls, claim: Mapping[str, Any]) -> ClaimFacts:
        name = claim["metadata"]["name"]
        pending = _condition(claim, "FileSystemResizePending")
        return cls(name=name, ordinal=ordinal_of(name),
                   requested=claim.get("spec", {}).get("resources", {}).get("requests", {}).get("storage"),
                   capacity=claim.get("status", {}).get("capacity", {}).get("storage"),
                   resize_pending=bool(pending and pending.get("status") == "True"),
                   storage_class=claim.get("spec", {}).get("storageClassName") or None)


@dataclass(frozen=True)
class ClusterObservation:
    statefulset: JSON | None
    pods: tuple[PodFacts, ...] = ()
    claims: tuple[ClaimFacts, ...] = ()
    leader: int | None = None
    extra: JSON = field(default_factory=dict)

    @classmethod
    def of(cls, statefulset: JSON | None, pods: Iterable[Mapping[str, Any]],
           claims: Iterable[Mapping[str, Any]]) -> ClusterObservation:
        facts = sorted((f for f in (PodFacts.of(p) for p in pods) if f is not None), key=lambda f: f.ordinal)
        return cls(statefulset=statefulset, pods=tuple(facts),
                   claims=tuple(sorted((ClaimFacts.of(c) for c in claims), key=lambda c: c.name)))

    @property
    def statefulset_replicas(self) -> int | None:
        if self.statefulset is None:
            return None
        return int(self.statefulset.get("spec", {}).get("replicas", 0))

    @property
    def update_revision(self) -> str | None:
        if self.statefulset is None:
            return None
        revision: str | None = self.statefulset.get("status", {}).get("updateRevision")
        return revision

    @property
    def claim_template_size(self) -> str | None:
        """The StatefulSet's claim template size (immutable there)."""
        if self.statefulset is None:
            return None
        for template in self.statefulset.get("spec", {}).get("volumeClaimTemplates") or []:
            size: str | None = template.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
            return size
        return None

    @property
    def statefulset_deleting(self) -> bool:
        return bool(self.statefulset and self.statefulset["metadata"].get("deletionTimestamp"))

    @property
    def ready_pods(self) -> tuple[PodFacts, ...]:
        return tuple(p for p in self.pods if p.ready)

    def pod(self, ordinal: int) -> PodFacts | None:
        return next((p for p in self.pods if p.ordinal == ordinal), None)

    def claim(self, ordinal: int) -> ClaimFacts | None:
        return next((c for c in self.claims if c.ordinal == ordinal), None)
