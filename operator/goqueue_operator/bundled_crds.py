"""The GoQueue CRDs this operator was built with, applied by the operator itself at start (`helm upgrade` never
updates a chart's crds/ folder, so without this an upgraded operator would run against its predecessor's schema).

The files in `crds/` beside this module are byte-identical copies of the repository's crds/, the schema of record
(a unit test keeps them equal); they ship in the wheel as package data. At start, before kopf watches anything,
each definition is server-side applied as field manager `goqueue-operator` (conflicts forced: the operator owns its
CRDs once it manages them) with the annotation `goqueue.io/operator-version: <its version>`. Never a downgrade: a
live CRD whose annotation names a newer version (compared by PEP 440, `packaging.version`) — a newer operator
already upgraded it — or a version that does not parse is left alone, with a log line saying why. Turned off by
`GOQUEUE_OPERATOR_MANAGE_CRDS=false` (chart value `crds.manage`) where CRDs are managed elsewhere (GitOps, a
cluster admin). The RBAC this needs: `get` and `patch` on exactly these five CRD names (an apply creates a missing
CRD through `patch` too).

Who may call it: the operator's startup handler (`main.py`), once per process, in the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml
from packaging.version import InvalidVersion, Version

from goqueue_operator.kube import JSON, Kube

log = logging.getLogger("goqueue_operator.crds")
CRD_KIND = "CustomResourceDefinition"
VERSION_ANNOTATION = "goqueue.io/operator-version"
BUNDLE_DIR = "crds"


def load_bundled() -> list[JSON]:
    """The bundled CRDs, by file name (the package data next to this module)."""
    folder = resources.files(__package__).joinpath(BUNDLE_DIR)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    crds: list[JSON] = [yaml.safe_load(f.read_text(encoding="utf-8")) for f in files]
    assert crds, f"no CRDs bundled in {folder}"
    assert all(c["kind"] == CRD_KIND for c in crds), f"a file in {folder} is not a CRD"
    return crds


def bundled_names() -> list[str]:
    return [str(crd["metadata"]["name"]) for crd in load_bundled()]


@dataclass(frozen=True)
class CrdDecision:
    """What to do with one CRD: apply ours, or leave the live one alone (and why, for the log)."""

    name: str
    action: Literal["apply", "skip"]
    reason: str


def decide(name: str, live: Mapping[str, Any] | None, own_version: str) -> CrdDecision:
    """Apply unless the live CRD was written by a newer operator (or names a version we cannot compare)."""
    if live is None:
        return CrdDecision(name, "apply", "absent")
    written_by = ((live.get("metadata") or {}).get("annotations") or {}).get(VERSION_ANNOTATION)
    if written_by is None:
        return CrdDecision(name, "apply", "not written by an operator (installed by helm or kubectl)")
    try:
        theirs = Version(str(written_by))
    except InvalidVersion:
        return CrdDecision(name, "skip", f"{VERSION_ANNOTATION}={written_by!r} is not a version: not touched")
    if theirs > Version(own_version):
        return CrdDecision(name, "skip", f"written by the newer operator {theirs}: never downgraded")
    return CrdDecision(name, "apply", f"written by operator {theirs}")


def stamped(crd: Mapping[str, Any], own_version: str) -> JSON:
    """The CRD as applied: the bundled definition plus the operator-version annotation."""
    meta = dict(crd["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), VERSION_ANNOTATION: own_version}
    return {**crd, "metadata": meta}


async def apply_bundled(kube: Kube, own_version: str, crds: Sequence[Mapping[str, Any]] | None = None,
                        ) -> list[CrdDecision]:
    """Read each live CRD, decide, apply ours where decided; one log event per CRD. Errors (KubeError) propagate:
    the caller turns them into kopf's retry policy."""
    decisions = []
    for crd in crds if crds is not None else load_bundled():
        name = str(crd["metadata"]["name"])
        decision = decide(name, await kube.get(CRD_KIND, "", name), own_version)
        if decision.action == "apply":
            await kube.apply(stamped(crd, own_version))
            log.info("crd.applied", extra={"crd": name, "version": own_version, "was": decision.reason})
        else:
            log.warning("crd.skipped", extra={"crd": name, "version": own_version, "reason": decision.reason})
        decisions.append(decision)
    return decisions
