"""The broker container's probes: startup and liveness on /healthz, readiness on /readyz (HTTP port).

- startup: a broker recovering a large log (CRC scan of unsealed segments) may take minutes before it serves;
  liveness is not checked until startup passes, so recovery is never killed half-way (10 minutes allowed);
- readiness: /readyz is true once storage is recovered and writes are accepted; the client Service and the
  operator's roller go by it;
- liveness: /healthz answers while the process serves HTTP; a hung broker is restarted after a minute.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources import ports


def _http(path: str, *, period_s: int, timeout_s: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": ports.HTTP, "scheme": "HTTP"}, "periodSeconds": period_s,
            "timeoutSeconds": timeout_s, "failureThreshold": failures, "successThreshold": 1}


def startup_probe() -> dict[str, Any]:
    return _http("/healthz", period_s=5, timeout_s=3, failures=120)


def readiness_probe() -> dict[str, Any]:
    return _http("/readyz", period_s=5, timeout_s=3, failures=3)


def liveness_probe() -> dict[str, Any]:
    return _http("/healthz", period_s=10, timeout_s=5, failures=6)
