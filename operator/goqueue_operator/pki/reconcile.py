"""The TLS step of a cluster reconcile: the issuer spec.tls names, and a Warning Event when it starts failing."""

from __future__ import annotations

from datetime import datetime

from goqueue_operator.kube import Kube, ObjectRef
from goqueue_operator.pki.certmanager import advance_cert_manager
from goqueue_operator.pki.execute import advance_self_signed
from goqueue_operator.pki.outcome import TLS_CONDITION, TlsOutcome
from goqueue_operator.pki.trust import read_trust
from goqueue_operator.resources.tls import certificates_wanted
from goqueue_operator.status.remedies import Subject, warning_message
from goqueue_operator.views import ClusterView


async def reconcile_tls(kube: Kube, cluster: ClusterView, about: ObjectRef, now: datetime, *,
                        brokers_serve_tls: bool) -> TlsOutcome:
    """`brokers_serve_tls`: some broker pod still has a certificate (TLS being turned off): keep trusting it."""
    if not certificates_wanted(cluster):
        return TlsOutcome.disabled(await read_trust(kube, cluster) if brokers_serve_tls else None)
    if cluster.spec.tls.issuer == "CertManager":
        outcome = await advance_cert_manager(kube, cluster)
    else:
        outcome = await advance_self_signed(kube, cluster, about, now)
    before = next((c for c in cluster.record.conditions if c.get("type") == TLS_CONDITION), {})
    condition = outcome.condition
    if condition.warning and (before.get("status"), before.get("reason")) != ("False", condition.reason):
        subject = Subject(about.kind, cluster.namespace, cluster.name, cluster.name)
        await kube.emit_event(about, condition.reason, warning_message(subject, condition), warning=True)
    return outcome
