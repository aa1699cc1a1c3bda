"""Moving running brokers between TLS phases, one roll at a time (docs/SECURITY.md, "Between brokers"). Pure.

A broker can call a peer's internal listener over TLS only once it holds the CA to verify it (and a certificate to
show), and a broker without them cannot call a peer whose internal listener requires TLS. So, turning internal TLS
on, every broker first gets its certificate and the CA with the internal listener still plain (with the client
listeners on TLS when `enabled` asks for them, else none), and the internal listener follows in a second roll once
every broker has them; turning it off undoes it in the opposite order. Switching only the client listeners (On ↔
Internal) is one roll. Each phase is a pod template: the roller restarts brokers into it one at a time,
health-gated, and the next phase begins when every pod has the previous one. A cluster without brokers (new, or
scaled to 0) goes straight to the end, once its certificate exists.

Raft is TLS-only (the `*_RAFT` phases) in clusters whose brokers all started that way — every cluster this operator
version creates. Brokers running without it (an older operator's, or ones that went through Off) keep Raft offering
TLS (dialled over TLS, a plain peer still taken): a broker image from before Raft TLS speaks it plain, and only an
offering broker can talk to it; nor may an operator upgrade change the template and roll every broker.
"""

from __future__ import annotations

from collections.abc import Sequence

from goqueue_operator.observed import PodFacts
from goqueue_operator.resources.tls import TlsPhase


def tls_phase(target: TlsPhase, pods: Sequence[PodFacts], *, certificate_ready: bool = True) -> TlsPhase:
    """The pod template's phase on the way to `target` (TlsPhase.of(cluster)). `certificate_ready`: the broker
    Secret holds a certificate (TLSReady). Until it does (cert-manager has not issued yet), no broker is moved
    towards TLS — its pod would wait for the Secret — and none is moved back."""
    if target is not TlsPhase.OFF and not certificate_ready and not any(p.certificate for p in pods):
        return TlsPhase.OFF
    if target.internal_listener and not all(p.certificate for p in pods):
        return TlsPhase.CLIENT_LISTENERS if target.client_listeners else TlsPhase.CERTIFICATES
    if not target.internal_listener and any(p.internal_tls for p in pods):
        return TlsPhase.CLIENT_LISTENERS if any(p.tls for p in pods) else TlsPhase.CERTIFICATES
    if target.raft_required and pods and not all(p.raft_tls for p in pods):
        return target.raft_offered()  # brokers that began offering Raft TLS keep offering it (below)
    return target
