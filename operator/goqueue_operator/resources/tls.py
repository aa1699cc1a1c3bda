"""What spec.tls puts into the broker pod: the broker-tls Secret as a read-only volume, the GOQUEUE_TLS_* paths,
and which listeners speak TLS in each phase of turning it on or off (pki/phase.py decides the phase).

Only paths go into variables: the key stays in the mounted Secret (docs/SECURITY.md, "TLS on Kubernetes").
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from goqueue_operator.resources import ports
from goqueue_operator.resources.names import TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY, TLS_VOLUME, child_name
from goqueue_operator.views import ClusterView

TLS_CERT_ENV = "GOQUEUE_TLS_CERTFILE"  # set: the broker serves TLS (observed.py reads pods by it)
TLS_LISTENERS_ENV = "GOQUEUE_TLS_LISTENERS"
CLIENT_LISTENERS = "http,grpc"


class TlsPhase(StrEnum):
    """With a certificate and the CA mounted, a broker's Raft offers TLS and still takes a plain peer; only the
    `*_RAFT` phases make it TLS-only. A cluster gets those from its first broker on; brokers that began without them
    keep offering (pki/phase.py: they may have peers of a release before Raft TLS, and an operator upgrade must not
    roll them)."""

    OFF = "Off"
    CERTIFICATES = "Certificates"          # certificates and the CA mounted; no listener speaks TLS yet
    CLIENT_LISTENERS = "ClientListeners"  # certificates mounted; http and grpc speak TLS, the internal listener not
    INTERNAL = "Internal"                  # only broker to broker (the internal listener) speaks TLS
    ON = "On"                              # every listener
    INTERNAL_RAFT = "InternalRaft"         # INTERNAL, and Raft TLS-only
    ON_RAFT = "OnRaft"                     # ON, and Raft TLS-only

    @classmethod
    def of(cls, cluster: ClusterView) -> TlsPhase:
        """Where spec.tls asks the brokers to be; also the phase of a cluster with no broker running (nothing to
        move through): `enabled` → every listener; `internal` alone (its default) → the broker-to-broker ones."""
        if cluster.spec.tls.enabled:
            return cls.ON_RAFT
        return cls.INTERNAL_RAFT if cluster.spec.tls.internal else cls.OFF

    @property
    def raft_required(self) -> bool:
        return self in (TlsPhase.INTERNAL_RAFT, TlsPhase.ON_RAFT)

    def raft_offered(self) -> TlsPhase:
        """The same listeners with Raft offering TLS rather than requiring it."""
        return {TlsPhase.INTERNAL_RAFT: TlsPhase.INTERNAL, TlsPhase.ON_RAFT: TlsPhase.ON}.get(self, self)

    @property
    def client_listeners(self) -> bool:
        """http and grpc speak TLS: probes, the in-pod CLIs and the operator use https."""
        return self in (TlsPhase.CLIENT_LISTENERS, TlsPhase.ON, TlsPhase.ON_RAFT)

    @property
    def internal_listener(self) -> bool:
        return self in (TlsPhase.INTERNAL, TlsPhase.ON, TlsPhase.INTERNAL_RAFT, TlsPhase.ON_RAFT)


# GOQUEUE_TLS_LISTENERS where it is not the broker's default (http,grpc,internal: On).
_LISTENERS = {TlsPhase.CERTIFICATES: "", TlsPhase.INTERNAL: "internal", TlsPhase.INTERNAL_RAFT: "internal,raft",
              TlsPhase.CLIENT_LISTENERS: CLIENT_LISTENERS, TlsPhase.ON_RAFT: "http,grpc,internal,raft"}


def certificates_wanted(cluster: ClusterView) -> bool:
    """The operator keeps broker certificates (and, SelfSigned, its CA) for the cluster."""
    return TlsPhase.of(cluster) is not TlsPhase.OFF


def ca_bundle_secret(cluster: ClusterView) -> str:
    """The Secret whose ca.crt clients trust: the operator's `<cluster>-cluster-ca-cert`, or with cert-manager the
    ca.crt it writes into `<cluster>-broker-tls`."""
    return child_name(cluster.name, "broker-tls" if cluster.spec.tls.issuer == "CertManager" else "cluster-ca-cert")


def tls_env(cluster: ClusterView, phase: TlsPhase) -> list[dict[str, Any]]:
    if phase is TlsPhase.OFF:
        return []
    env = [
        {"name": TLS_CERT_ENV, "value": f"{ports.TLS_DIR}/{TLS_CERT_KEY}"},
        {"name": "GOQUEUE_TLS_KEYFILE", "value": f"{ports.TLS_DIR}/{TLS_KEY_KEY}"},
        {"name": "GOQUEUE_TLS_CAFILE", "value": f"{ports.TLS_DIR}/{TLS_CA_KEY}"},
    ]
    if not phase.client_listeners:  # client certificates and the CLIs' https are about the client listeners
        return [*env, {"name": TLS_LISTENERS_ENV, "value": _LISTENERS[phase]}]
    env.append({"name": "GOQUEUE_TLS_CLIENTAUTH", "value": cluster.spec.tls.client_auth})
    if cluster.spec.tls.issuer == "SelfSigned":
        # The operator's own CA signs GoQueueUser client certificates (users/client_cert.py): the brokers take
        # them as principals. An issuer of cert-manager may sign for anyone who asks: its certificates name nobody.
        env.append({"name": "GOQUEUE_TLS_CLIENTCAFILE", "value": f"{ports.TLS_DIR}/{TLS_CA_KEY}"})
    if phase in _LISTENERS:
        env.append({"name": TLS_LISTENERS_ENV, "value": _LISTENERS[phase]})
    # The CLIs' settings (read by goqueue-cli and goqueue-admin, ignored by the broker): the runbook's
    # `kubectl exec goqueue-0 -- goqueue-cli ...` keeps working unchanged, over https to localhost (a name the
    # broker certificate carries), trusting the cluster's CA.
    env += [{"name": "GOQUEUE_SERVER", "value": f"https://localhost:{ports.HTTP_PORT}"},
            {"name": "GOQUEUE_CA_FILE", "value": f"{ports.TLS_DIR}/{TLS_CA_KEY}"}]
    return env


def tls_mounts(phase: TlsPhase) -> list[dict[str, Any]]:
    return [] if phase is TlsPhase.OFF else [{"name": TLS_VOLUME, "mountPath": ports.TLS_DIR, "readOnly": True}]


def tls_volumes(cluster: ClusterView, phase: TlsPhase) -> list[dict[str, Any]]:
    """The broker-tls Secret, whichever issuer fills it; 0440: root-owned files, group fsGroup (the broker's).
    A Secret volume follows the Secret's updates, so renewed certificates reach running brokers."""
    if phase is TlsPhase.OFF:
        return []
    return [{"name": TLS_VOLUME, "secret": {"secretName": child_name(cluster.name, "broker-tls"),
                                            "defaultMode": 0o440}}]
