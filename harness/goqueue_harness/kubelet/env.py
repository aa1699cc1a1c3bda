"""A container's environment, resolved as the kubelet does: fieldRefs, keyRefs, envFrom, $(VAR).

Pure functions: the pod, the ConfigMaps/Secrets it names and the pod IP in; a
dict out. Why pure: the resolution rules (order, optional refs, ``$(VAR)``
expansion with ``$$`` escapes) are fiddly and deserve tests without a cluster.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from goqueue_harness.kubeapi import JSON


class EnvError(ValueError):
    """A required ConfigMap, Secret or key is missing: the container cannot start yet."""


@dataclass(frozen=True)
class PodFacts:
    """What downward-API fieldRefs can refer to."""

    pod: JSON
    pod_ip: str
    host_ip: str
    node_name: str
    config_maps: Mapping[str, JSON] = field(default_factory=dict)  # by name, same namespace
    secrets: Mapping[str, JSON] = field(default_factory=dict)


def field_ref_value(facts: PodFacts, path: str) -> str:
    """The value of a downward-API ``fieldPath``."""
    meta = facts.pod["metadata"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": facts.node_name,
        "spec.serviceAccountName": facts.pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


def _config_map_data(facts: PodFacts, name: str) -> dict[str, str] | None:
    cm = facts.config_maps.get(name)
    if cm is None:
        return None
    data = dict(cm.get("data") or {})
    for key, value in (cm.get("binaryData") or {}).items():
        data[key] = base64.b64decode(value).decode(errors="replace")
    return data


def _secret_data(facts: PodFacts, name: str) -> dict[str, str] | None:
    secret = facts.secrets.get(name)
    if secret is None:
        return None
    data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def _key_ref(kind: str, ref: JSON, data: dict[str, str] | None) -> str | None:
    optional = bool(ref.get("optional", False))
    if data is None:
        if optional:
            return None
        raise EnvError(f'{kind} "{ref.get("name")}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise EnvError(f'couldn\'t find key {ref["key"]} in {kind} {ref.get("name")}')
    return data[ref["key"]]


def _resource_field(container: JSON, ref: JSON) -> str:
    section, _, resource = str(ref["resource"]).partition(".")
    value = container.get("resources", {}).get(section, {}).get(resource)
    return str(value) if value is not None else "0"


def _env_from(facts: PodFacts, container: JSON) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref, kind = source["configMapRef"], "configmap"
            data = _config_map_data(facts, ref["name"])
        else:
            ref, kind = source["secretRef"], "secret"
            data = _secret_data(facts, ref["name"])
        if data is None:
            if ref.get("optional", False):
                continue
            raise EnvError(f'{kind} "{ref["name"]}" not found')
        env.update({prefix + k: v for k, v in data.items()})
    return env


def _value_from(facts: PodFacts, container: JSON, name: str, source: JSON) -> str | None:
    if "fieldRef" in source:
        return field_ref_value(facts, source["fieldRef"]["fieldPath"])
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        return _key_ref("configmap", ref, _config_map_data(facts, ref["name"]))
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        return _key_ref("secret", ref, _secret_data(facts, ref["name"]))
    if "resourceFieldRef" in source:
        return _resource_field(container, source["resourceFieldRef"])
    raise EnvError(f"unsupported valueFrom for {name}: {sorted(source)}")


def container_env(facts: PodFacts, container: JSON) -> dict[str, str]:
    """Resolve ``envFrom`` then ``env`` (later wins), expanding ``$(VAR)`` as Kubernetes does."""
    env = _env_from(facts, container)
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        value = _value_from(facts, container, name, var["valueFrom"])
        if value is not None:
            env[name] = value
    return env


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known vars substitute, unknown stay, ``$$`` escapes."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR.sub(substitute, text)
