"""Startup, readiness and liveness probes run against the pod's 127.x address.

Why: readiness gates ``OrderedReady`` StatefulSet rollouts and the operator's
view of a cluster, so it must come from the pod's own probe definition (httpGet,
tcpSocket, exec, grpc), exactly as a kubelet would evaluate it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from goqueue_harness.kubeapi import JSON


@dataclass(frozen=True)
class ProbeTarget:
    """Where and how a container's probes run."""

    pod_ip: str
    container: JSON
    env: Mapping[str, str]
    cwd: Path
    rewrite: Callable[[str], str]


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay_s: float
    period_s: float
    timeout_s: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: JSON) -> ProbeTiming:
        return cls(
            initial_delay_s=float(probe.get("initialDelaySeconds", 0)),
            period_s=float(probe.get("periodSeconds", 10)),
            timeout_s=float(probe.get("timeoutSeconds", 1)),
            success_threshold=int(probe.get("successThreshold", 1)),
            failure_threshold=int(probe.get("failureThreshold", 3)),
        )


def resolve_port(port: int | str, container: JSON) -> int:
    """A probe port is a number or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"container has no port named {port!r}")


async def run_probe(probe: JSON, target: ProbeTarget) -> bool:
    """One probe attempt: True on success."""
    timeout_s = ProbeTiming.of(probe).timeout_s
    try:
        if "httpGet" in probe:
            return await _http_get(probe["httpGet"], target, timeout_s)
        if "tcpSocket" in probe:
            return await _tcp(target.pod_ip if not probe["tcpSocket"].get("host") else probe["tcpSocket"]["host"],
                              resolve_port(probe["tcpSocket"]["port"], target.container), timeout_s)
        if "grpc" in probe:
            # No gRPC health client in the harness: a listening port is the best evidence we have.
            return await _tcp(target.pod_ip, int(probe["grpc"]["port"]), timeout_s)
        if "exec" in probe:
            return await _exec([target.rewrite(a) for a in probe["exec"]["command"]], target, timeout_s)
    except (OSError, ValueError, httpx.HTTPError, TimeoutError):
        return False
    return False


async def _http_get(spec: JSON, target: ProbeTarget, timeout_s: float) -> bool:
    host = spec.get("host") or target.pod_ip
    port = resolve_port(spec["port"], target.container)
    scheme = str(spec.get("scheme", "HTTP")).lower()
    path = spec.get("path", "/")
    headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
    async with httpx.AsyncClient(verify=False, timeout=timeout_s) as client:
        response = await client.get(f"{scheme}://{host}:{port}{path}", headers=headers)
    return 200 <= response.status_code < 400


async def _tcp(host: str, port: int, timeout_s: float) -> bool:
    async with asyncio.timeout(timeout_s):  # not wait_for: on 3.11 it can swallow a cancellation
        _, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _exec(argv: list[str], target: ProbeTarget, timeout_s: float) -> bool:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=dict(target.env), cwd=target.cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_s):
            return await proc.wait() == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False
