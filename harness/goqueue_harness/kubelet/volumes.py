"""Pod volumes as host folders, and the path rewriting that stands in for mounts.

Why rewriting: a local process cannot get a private mount namespace without
root, so ``/var/lib/goqueue/data`` (a container's ``mountPath``) cannot be made
to *be* the claim's folder. Instead every mount maps its ``mountPath`` to a host
folder, and the kubelet rewrites any path that starts with a ``mountPath`` at a
path boundary in the container's ``command``, ``args``, env values, probe
``exec`` commands and the text files it materialises from ConfigMaps and
Secrets. The broker reads ``storage.dataDir``/``storage.walDir`` from its config
file or ``GOQUEUE_STORAGE_DATADIR``/``GOQUEUE_STORAGE_WALDIR``, so it ends up on
the claim's folder with no product change. Paths hard-coded inside a program
(not passed in) are not rewritten: that is the mechanism's limit.

Host folders:
- persistentVolumeClaim: the bound PV's ``hostPath`` (``<state>/volumes/<pv>``),
  so data survives pod deletion and restart, as a real PV does;
- emptyDir, configMap, secret, downwardAPI, projected: ``<pod dir>/volumes/<name>``,
  removed with the pod;
- hostPath: the path itself.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from goqueue_harness.kubeapi import JSON
from goqueue_harness.kubelet.env import PodFacts, field_ref_value


class VolumeNotReady(RuntimeError):
    """A claim is unbound or a referenced ConfigMap/Secret is missing: retry later."""


@dataclass(frozen=True)
class Mount:
    """One ``volumeMount`` resolved: the path the program asks for and where it really is."""

    mount_path: str
    host_path: Path


class PathRewriter:
    """Rewrites ``mountPath``-prefixed paths in strings to their host folders."""

    def __init__(self, mounts: Sequence[Mount]) -> None:
        by_length = sorted(mounts, key=lambda m: len(m.mount_path), reverse=True)
        self._targets = {m.mount_path.rstrip("/") or "/": str(m.host_path) for m in by_length}
        paths = [re.escape(p) for p in self._targets if p != "/"]
        # A mount path counts only at a path boundary: not preceded by a path character,
        # followed by the end, a slash, or a delimiter (so /data never matches /database).
        self._pattern = (
            re.compile(r"(?<![\w./-])(" + "|".join(paths) + r")(?=$|[/\s\"',;:}\])])") if paths else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._targets[m.group(1)], text)


def pod_volume_dir(pod_dir: Path, volume_name: str) -> Path:
    return pod_dir / "volumes" / volume_name


def _write_items(folder: Path, data: Mapping[str, bytes], items: Sequence[JSON] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    selected: dict[str, str] = {i["key"]: str(i.get("path", i["key"])) for i in items} if items else {
        k: k for k in data}
    for key, rel in selected.items():
        if key not in data:
            continue
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data[key])
        tmp.replace(target)


def _config_map_bytes(cm: JSON) -> dict[str, bytes]:
    data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return data


def _secret_bytes(secret: JSON) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


@dataclass(frozen=True)
class VolumeSources:
    """What materialising a pod's volumes needs from the API, fetched by the caller."""

    facts: PodFacts
    claim_folders: Mapping[str, Path]  # claim name -> bound PV's host folder
    service_account_token: str | None = None
    ca_bundle: str | None = None


def materialise(pod: JSON, pod_dir: Path, sources: VolumeSources) -> dict[str, Path]:
    """Create each volume's host folder; return volume name -> folder."""
    folders: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        folder = pod_volume_dir(pod_dir, name)
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim not in sources.claim_folders:
                raise VolumeNotReady(f'persistentvolumeclaim "{claim}" is not bound')
            folder = sources.claim_folders[claim]
            folder.mkdir(parents=True, exist_ok=True)
        elif "hostPath" in volume:
            folder = Path(volume["hostPath"]["path"])
            folder.mkdir(parents=True, exist_ok=True)
        elif "configMap" in volume:
            _materialise_ref(folder, volume["configMap"], sources.facts.config_maps, _config_map_bytes, "configmap")
        elif "secret" in volume:
            ref = {"name": volume["secret"]["secretName"], **volume["secret"]}
            _materialise_ref(folder, ref, sources.facts.secrets, _secret_bytes, "secret")
        elif "downwardAPI" in volume:
            _materialise_downward(folder, volume["downwardAPI"].get("items") or [], sources.facts)
        elif "projected" in volume:
            _materialise_projected(folder, volume["projected"].get("sources") or [], sources)
        else:  # emptyDir and anything we do not emulate: an empty folder
            folder.mkdir(parents=True, exist_ok=True)
        folders[name] = folder
    return folders


def _materialise_ref(
    folder: Path, ref: JSON, objects: Mapping[str, JSON], to_bytes: Callable[[JSON], dict[str, bytes]], kind: str
) -> None:
    obj = objects.get(ref["name"])
    if obj is None:
        if ref.get("optional", False):
            folder.mkdir(parents=True, exist_ok=True)
            return
        raise VolumeNotReady(f'{kind} "{ref["name"]}" not found')
    _write_items(folder, to_bytes(obj), ref.get("items"))


def _materialise_downward(folder: Path, items: Sequence[JSON], facts: PodFacts) -> None:
    data = {i["path"]: field_ref_value(facts, i["fieldRef"]["fieldPath"]).encode()
            for i in items if "fieldRef" in i}
    _write_items(folder, data, None)


def _materialise_projected(folder: Path, projections: Sequence[JSON], sources: VolumeSources) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for source in projections:
        if "configMap" in source:
            _materialise_ref(folder, source["configMap"], sources.facts.config_maps, _config_map_bytes, "configmap")
        elif "secret" in source:
            _materialise_ref(folder, source["secret"], sources.facts.secrets, _secret_bytes, "secret")
        elif "downwardAPI" in source:
            _materialise_downward(folder, source["downwardAPI"].get("items") or [], sources.facts)
        elif "serviceAccountToken" in source and sources.service_account_token is not None:
            path = source["serviceAccountToken"].get("path", "token")
            _write_items(folder, {path: sources.service_account_token.encode()}, None)


def write_service_account_tokens(pod: JSON, folders: Mapping[str, Path], token: str) -> int:
    """Put a renewed token into every projected volume that carries one; returns how many files were written."""
    written = 0
    for volume in pod["spec"].get("volumes") or []:
        folder = folders.get(volume["name"])
        if folder is None or "projected" not in volume:
            continue
        for source in volume["projected"].get("sources") or []:
            if "serviceAccountToken" in source:
                _write_items(folder, {source["serviceAccountToken"].get("path", "token"): token.encode()}, None)
                written += 1
    return written


def container_mounts(container: JSON, folders: Mapping[str, Path]) -> list[Mount]:
    mounts = []
    for vm in container.get("volumeMounts") or []:
        host = folders.get(vm["name"])
        if host is None:
            continue
        sub = vm.get("subPath")
        if sub:
            host = host / sub
            host.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(vm["mountPath"], host))
    return mounts


def rewrite_text_files(rewrite: PathRewriter, folders: Mapping[str, Path], pod: JSON) -> None:
    """Rewrite mount paths inside ConfigMap/Secret text files this pod mounts (config files)."""
    kinds = {v["name"] for v in pod["spec"].get("volumes") or [] if {"configMap", "secret", "projected"} & v.keys()}
    seen: set[Path] = set()
    for name in kinds:
        folder = folders.get(name)
        if folder is None or folder in seen:
            continue
        seen.add(folder)
        for file in folder.rglob("*"):
            if not file.is_file():
                continue
            try:
                text = file.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            new = rewrite(text)
            if new != text:
                file.write_text(new)
