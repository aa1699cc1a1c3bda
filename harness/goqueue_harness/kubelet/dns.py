"""Cluster DNS for local processes: per-pod hosts files read through nss_wrapper.

Why: brokers find their peers by StatefulSet DNS names
(``goqueue-1.goqueue-headless.ns.svc.cluster.local``); with no cluster DNS, each
container is started with ``LD_PRELOAD=libnss_wrapper.so`` and
``NSS_WRAPPER_HOSTS=<its pod's hosts file>``, so libc's ``getaddrinfo`` (which
Python, Go-with-cgo and most runtimes use) reads names from that file first and
falls back to normal resolution. Product code needs no hook.
``NSS_WRAPPER_HOSTNAME`` makes ``gethostname()`` return the pod's hostname, as in
a container.

One file per pod because the short names depend on the asker's namespace
(``goqueue-0.goqueue-headless`` only resolves from the same namespace, as with a
pod's DNS search path). The records follow Kubernetes' DNS spec:
``<hostname>.<subdomain>.<ns>.svc.cluster.local`` exists when a headless
Service named ``<subdomain>`` selects the pod and the pod is Ready or the
Service publishes not-ready addresses; a Service name resolves to its ready
pods' IPs (pod IPs, since ClusterIPs are not routable here). Files are replaced
atomically: nss_wrapper reloads a hosts file whose inode was replaced.
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from goqueue_harness.kubeapi import JSON

CLUSTER_DOMAIN = "cluster.local"
NSS_WRAPPER_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
    "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
    "/usr/lib64/libnss_wrapper.so",
    "/usr/lib/libnss_wrapper.so",
)


class NssWrapperMissing(RuntimeError):
    """libnss_wrapper.so is not installed (Debian: ``apt-get install -y libnss-wrapper``)."""


def find_nss_wrapper() -> str:
    override = os.environ.get("GOQUEUE_NSS_WRAPPER_LIB")
    candidates = [override] if override else [*NSS_WRAPPER_CANDIDATES, ctypes.util.find_library("nss_wrapper")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise NssWrapperMissing("libnss_wrapper.so not found: apt-get install -y libnss-wrapper "
                            "(or set GOQUEUE_NSS_WRAPPER_LIB)")


def pod_hostname(pod: JSON) -> str:
    return str(pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]


def _is_ready(pod: JSON) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def _selects(service: JSON, pod: JSON) -> bool:
    selector = service["spec"].get("selector") or {}
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _name_forms(base: str, namespace: str, asker_namespace: str) -> list[str]:
    """``base`` is ``<svc>`` or ``<host>.<svc>``; the forms reachable through the search path."""
    forms = [f"{base}.{namespace}.svc.{CLUSTER_DOMAIN}", f"{base}.{namespace}.svc", f"{base}.{namespace}"]
    if namespace == asker_namespace:
        forms.append(base)
    return forms


def cluster_records(
    pods: Iterable[JSON], services: Iterable[JSON], asker_namespace: str
) -> list[tuple[str, list[str]]]:
    """``(ip, names)`` pairs for every pod and Service name visible from ``asker_namespace``."""
    pods = [p for p in pods if p.get("status", {}).get("podIP") and not p["metadata"].get("deletionTimestamp")]
    records: list[tuple[str, list[str]]] = []
    for svc in services:
        ns = svc["metadata"]["namespace"]
        name = svc["metadata"]["name"]
        headless = svc["spec"].get("clusterIP") == "None"
        publish_not_ready = bool(svc["spec"].get("publishNotReadyAddresses"))
        for pod in pods:
            if pod["metadata"]["namespace"] != ns or not _selects(svc, pod):
                continue
            visible = _is_ready(pod) or (headless and publish_not_ready)
            if not visible:
                continue
            ip = pod["status"]["podIP"]
            records.append((ip, _name_forms(name, ns, asker_namespace)))
            if headless and pod["spec"].get("subdomain") == name:
                records.append((ip, _name_forms(f"{pod_hostname(pod)}.{name}", ns, asker_namespace)))
    return records


def hosts_file_text(pod: JSON, pod_ip: str, records: Iterable[tuple[str, list[str]]], apiserver_ip: str) -> str:
    ns = pod["metadata"]["namespace"]
    own = [pod_hostname(pod)]
    sub = pod["spec"].get("subdomain")
    if sub:
        own = [*_name_forms(f"{own[0]}.{sub}", ns, ns), own[0]]
    # No comment lines: nss_wrapper rejects the whole file on a line starting with "#".
    lines = [
        "127.0.0.1 localhost",
        f"{pod_ip} {' '.join(own)}",
        f"{apiserver_ip} kubernetes " + " ".join(_name_forms("kubernetes", "default", ns)),
    ]
    lines += [f"{ip} {' '.join(names)}" for ip, names in records]
    return "\n".join(lines) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Atomically replace ``path`` (a new inode makes nss_wrapper reload it)."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def container_dns_env(hosts_file: Path, hostname: str, library: str, inherited: Mapping[str, str]) -> dict[str, str]:
    """The env that points a process's resolver at its pod's hosts file."""
    preload = inherited.get("LD_PRELOAD", "")
    return {
        "LD_PRELOAD": f"{library} {preload}".strip(),
        "NSS_WRAPPER_HOSTS": str(hosts_file),
        "NSS_WRAPPER_HOSTNAME": hostname,
    }
