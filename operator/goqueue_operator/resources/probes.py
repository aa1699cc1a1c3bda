"""The broker container's probes: startup and liveness on /healthz, readiness on /readyz (HTTP port).

- startup: a broker recovering a large log (CRC scan of unsealed segments) may take minutes before it serves;
  liveness is not checked until startup passes, so recovery is never killed half-way (10 minutes allowed);
- readiness: /readyz is true once storage is recovered and writes are accepted; the client Service and the
  operator's roller go by it;
- liveness: /healthz answers while the process serves HTTP; a hung broker is restarted after a minute.

With spec.tls on, the HTTP port speaks TLS and the probes say `scheme: HTTPS` (the kubelet does not verify the
certificate: a probe asks whether the broker serves, not who it is).
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources import ports


def _http(path: str, *, period_s: int, timeout_s: int, failures: int, tls: bool) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": ports.HTTP, "scheme": "HTTPS" if tls else "HTTP"},
            "periodSeconds": period_s,
            "timeoutSeconds": timeout_s, "failureThreshold": failures, "successThreshold": 1}


def startup_probe(*, tls: bool = False) -> dict[str, Any]:
    return _http("/healthz", period_s=5, timeout_s=3, failures=120, tls=tls)


def readiness_probe(*, tls: bool = False) -> dict[str, Any]:
    return _http("/readyz", period_s=5, timeout_s=3, failures=3, tls=tls)


def liveness_probe(*, tls: bool = False) -> dict[str, Any]:
    return _http("/healthz", period_s=10, timeout_s=5, failures=6, tls=tls)
