"""Turning TLS on or off on running brokers, in two rolls (docs/SECURITY.md, "Between brokers"). Pure.

A broker can call a peer's internal listener over TLS only once it holds the CA to verify it, and a broker without
TLS cannot call a peer whose internal listener requires it. So, turning TLS on, every broker first gets its
certificate with TLS on the client listeners only (http, grpc), and the internal listener follows in a second roll
once every broker has the CA; turning it off undoes it in the opposite order. Each phase is a pod template: the
roller restarts brokers into it one at a time, health-gated, and the next phase begins when every pod has the
previous one. A cluster without brokers (new, or scaled to 0) goes straight to the end, once its certificate exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from goqueue_operator.observed import PodFacts
from goqueue_operator.resources.tls import TlsPhase


def tls_phase(enabled: bool, pods: Sequence[PodFacts], *, certificate_ready: bool = True) -> TlsPhase:
    """`certificate_ready`: the broker Secret holds a certificate (TLSReady). Until it does (cert-manager has not
    issued yet), no broker is moved towards TLS — its pod would wait for the Secret — and none is moved back."""
    if enabled and not certificate_ready and not any(p.tls for p in pods):
        return TlsPhase.OFF
    if enabled:
        return TlsPhase.ON if all(p.tls for p in pods) else TlsPhase.CLIENT_LISTENERS
    return TlsPhase.CLIENT_LISTENERS if any(p.internal_tls for p in pods) else TlsPhase.OFF
