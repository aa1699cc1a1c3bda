"""The cluster CA's executor (issuer SelfSigned): read the three Secrets, then plan, perform, write, and plan
again until nothing is due. Keys are made here (randomness and the clock stay out of the planner) and go nowhere
but Secrets: no log line, Event or status field carries one.

Each step writes the Secrets it changed before the next is planned, so an operator killed between steps finds
the material of the last finished step and carries on from there.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from goqueue_operator.kube import Kube, KubeError, NamespaceTerminating, ObjectRef
from goqueue_operator.pki.certs import CertificateError, issue_ca, issue_leaf, read_bundle
from goqueue_operator.pki.material import (
    PkiMaterial,
    broker_secret,
    ca_cert_secret,
    ca_secret,
    observe,
    read_material,
)
from goqueue_operator.pki.outcome import TLS_CONDITION, TlsOutcome, when
from goqueue_operator.pki.plan import PkiPolicy, PkiStep, PkiStepKind, next_pki_step
from goqueue_operator.pki.sans import LOOPBACK_ADDRESSES, broker_common_name, broker_dns_names
from goqueue_operator.resources.names import child_name
from goqueue_operator.status.conditions import Condition
from goqueue_operator.views import ClusterView

MAX_STEPS = 8  # a new cluster takes three (CA, trust, certificate); a CA renewal at most four


def policy_for(cluster: ClusterView) -> PkiPolicy:
    tls = cluster.spec.tls
    return PkiPolicy(dns_names=broker_dns_names(cluster), ip_addresses=LOOPBACK_ADDRESSES,
                     leaf_validity=timedelta(days=tls.validity_days),
                     leaf_renew_before=timedelta(days=tls.renew_before_days),
                     ca_validity=timedelta(days=tls.ca_validity_days),
                     ca_renew_before=timedelta(days=tls.ca_renew_before_days))


def perform(step: PkiStep, material: PkiMaterial, cluster: ClusterView, policy: PkiPolicy,
            now: datetime) -> PkiMaterial:
    """The material after one step (new keys where the step makes them)."""
    ca_name = f"goqueue cluster CA {cluster.namespace}/{cluster.name}"
    kind = step.kind
    if kind is PkiStepKind.CREATE_CA:
        return replace(material, signing=issue_ca(ca_name, now=now, validity=policy.ca_validity))
    if kind is PkiStepKind.CREATE_SUCCESSOR:
        return replace(material, successor=issue_ca(ca_name, now=now, validity=policy.ca_validity))
    if kind is PkiStepKind.PROMOTE_SUCCESSOR:
        assert material.signing is not None
        assert material.successor is not None
        return replace(material, signing=material.successor, successor=None,
                       previous_cert=material.signing.cert_pem)
    if kind is PkiStepKind.DROP_EXPIRED_CA:
        return replace(material, previous_cert=None)
    if kind is PkiStepKind.PUBLISH_TRUST:
        return material.published(now)
    if kind is PkiStepKind.ISSUE_LEAF:
        assert material.signing is not None
        return replace(material, leaf=issue_leaf(material.signing, broker_common_name(cluster),
                                                 dns_names=policy.dns_names, ip_addresses=policy.ip_addresses,
                                                 now=now, validity=policy.leaf_validity))
    raise AssertionError(f"not an action: {step}")


async def _write(kube: Kube, step: PkiStep, material: PkiMaterial, cluster: ClusterView) -> None:
    kind = step.kind
    if kind in (PkiStepKind.CREATE_CA, PkiStepKind.CREATE_SUCCESSOR, PkiStepKind.PROMOTE_SUCCESSOR,
                PkiStepKind.DROP_EXPIRED_CA, PkiStepKind.PUBLISH_TRUST):
        await kube.apply(ca_secret(cluster, material))
    if kind is PkiStepKind.PUBLISH_TRUST:
        await kube.apply(ca_cert_secret(cluster, material))
    # kubernetes.io/tls requires both keys: the broker Secret is first written with its certificate
    if kind is PkiStepKind.ISSUE_LEAF or (kind is PkiStepKind.PUBLISH_TRUST and material.leaf is not None):
        await kube.apply(broker_secret(cluster, material))


async def _read(kube: Kube, cluster: ClusterView) -> PkiMaterial:
    ns = cluster.namespace
    return read_material(await kube.get("Secret", ns, child_name(cluster.name, "cluster-ca")),
                         await kube.get("Secret", ns, child_name(cluster.name, "cluster-ca-cert")),
                         await kube.get("Secret", ns, child_name(cluster.name, "broker-tls")))


def _ready(material: PkiMaterial, last: PkiStep, idle: PkiStep) -> TlsOutcome:
    observed_leaf = read_bundle(material.leaf.cert_pem)[0] if material.leaf else None
    signing = read_bundle(material.signing.cert_pem)[0] if material.signing else None
    record = {"issuer": "SelfSigned", "notAfter": when(observed_leaf.not_after if observed_leaf else None),
              "caNotAfter": when(signing.not_after if signing else None), "renewAt": when(idle.next_check),
              "step": last.kind.value}
    message = (f"broker certificate valid until {record['notAfter']}; cluster CA until {record['caNotAfter']}"
               + ("; a successor CA is trusted and takes over after its propagation delay"
                  if material.successor is not None else ""))
    return TlsOutcome(Condition(TLS_CONDITION, True, "CertificatesValid", message),
                      {k: v for k, v in record.items() if v is not None}, material.client_bundle)


async def advance_self_signed(kube: Kube, cluster: ClusterView, about: ObjectRef, now: datetime) -> TlsOutcome:
    """Bring the cluster CA and the broker certificate to what spec.tls asks; one Event per step taken."""
    material = await _read(kube, cluster)
    policy = policy_for(cluster)
    last = PkiStep(PkiStepKind.IDLE)
    for _ in range(MAX_STEPS):
        step = next_pki_step(observe(material, cluster.name), policy, now)
        if step.kind is PkiStepKind.BLOCKED:
            return TlsOutcome.failed(step.reason, step.message, trust=material.client_bundle or None)
        if step.kind is PkiStepKind.IDLE:
            return _ready(material, last, step)
        try:
            material = perform(step, material, cluster, policy, now)
            await _write(kube, step, material, cluster)
        except NamespaceTerminating:
            raise  # the namespace is going away with the cluster: nothing failed (handlers/cluster.py)
        except (CertificateError, KubeError) as exc:
            return TlsOutcome.failed("IssuanceFailed", f"{step.kind.value} failed: {exc}",
                                     trust=material.client_bundle or None)
        await kube.emit_event(about, step.reason, step.message)
        last = step
    raise AssertionError("the PKI planner did not settle")  # every step moves towards Idle: a bug, not a state
