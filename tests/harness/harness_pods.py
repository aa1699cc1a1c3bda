"""Pod builders and readers shared by the harness tests (plain JSON, camelCase keys)."""

from __future__ import annotations

import json
import sys
from typing import Any

from kubernetes import client as k8s

JSON = dict[str, Any]


def python_container(name: str, code: str, **extra: Any) -> JSON:
    """A container running a Python snippet with this interpreter (images are ignored)."""
    return {"name": name, "image": "python:3.11", "command": [sys.executable, "-u", "-c", code], **extra}


def pod_manifest(name: str, containers: list[JSON], **spec: Any) -> JSON:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": containers, **spec}}


def read_pod(core: k8s.CoreV1Api, namespace: str, name: str) -> JSON | None:
    """The pod as plain JSON (camelCase keys), or None once it is gone."""
    try:
        response = core.read_namespaced_pod(name, namespace, _preload_content=False)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    pod: JSON = json.loads(response.data)
    return pod


def is_ready(pod: JSON | None) -> bool:
    return pod is not None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def container_status(pod: JSON | None, name: str) -> JSON:
    for status in (pod or {}).get("status", {}).get("containerStatuses", []):
        if status["name"] == name:
            result: JSON = status
            return result
    return {}


def ready_pod(core: k8s.CoreV1Api, namespace: str, name: str) -> JSON | None:
    """The pod if it exists and is Ready (a ``wait_until`` predicate)."""
    pod = read_pod(core, namespace, name)
    return pod if is_ready(pod) else None
