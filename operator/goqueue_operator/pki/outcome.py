"""What the TLS part of a reconcile reports: the TLSReady condition, status.tls and the bundle to verify with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from goqueue_operator.status.conditions import Condition, timestamp

TLS_CONDITION = "TLSReady"


@dataclass(frozen=True)
class TlsOutcome:
    condition: Condition
    record: dict[str, Any] = field(default_factory=dict)  # status.tls
    trust: bytes | None = None  # the CA bundle the operator verifies brokers against; None: nothing to verify with

    @classmethod
    def disabled(cls, trust: bytes | None = None) -> TlsOutcome:
        return cls(Condition(TLS_CONDITION, False, "TLSDisabled", "spec.tls.enabled and spec.tls.internal are "
                             "false: brokers serve plaintext"), trust=trust)

    @classmethod
    def failed(cls, reason: str, message: str, record: dict[str, Any] | None = None,
               trust: bytes | None = None) -> TlsOutcome:
        return cls(Condition(TLS_CONDITION, False, reason, message, warning=True), record or {}, trust)


def when(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment is not None else None
