"""The operator upgrades its own CRDs at start (bundled_crds.py), on the real control plane, as its ServiceAccount:
`helm upgrade` never touches a chart's crds/, so this is how a new operator brings its new CRDs.

Each test leaves the live CRDs as an older install would (a printer column missing, as before a column was added),
then starts a `goqueue-operator` process under the ServiceAccount of operator/deploy/20-rbac.yaml (the chart's
ClusterRole has the same rules: tests/integration/chart_render/test_goqueue_operator_chart.py) and looks at the CRDs
once the operator logged its decision. The operator serves only this module's empty namespace, so it reconciles
nothing another test owns. The old state only drops a printer column: harmless to anything else using the CRDs
meanwhile; afterwards every CRD is put back to crds/ with its original annotations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_process import (
    NAMESPACE,
    SERVICE_ACCOUNT,
    OperatorProcess,
    install_operator_rbac,
    problems_in_log,
    service_account_kubeconfig,
)

from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until
from goqueue_operator import __version__

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))
ANNOTATION = "goqueue.io/operator-version"
AS_OPERATOR = f"--as=system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
JSON = dict[str, Any]


def bundled() -> dict[str, JSON]:
    crds = [yaml.safe_load(p.read_text()) for p in CRD_FILES]
    return {c["metadata"]["name"]: c for c in crds}


def live(kubectl: Kubectl, name: str) -> JSON:
    found: JSON = json.loads(kubectl("get", f"crd/{name}", "-o", "json", "--show-managed-fields"))
    return found


def columns(crd: JSON) -> list[str]:
    return [c["name"] for c in crd["spec"]["versions"][0].get("additionalPrinterColumns", [])]


def replace(kubectl: Kubectl, crd: JSON, annotations: dict[str, str]) -> JSON:
    """PUT `crd` over the live one (as `kubectl replace` does: the whole object), with these annotations."""
    current = live(kubectl, crd["metadata"]["name"])
    body = {**crd, "metadata": {**crd["metadata"], "annotations": annotations,
                                "resourceVersion": current["metadata"]["resourceVersion"]}}
    replaced: JSON = json.loads(kubectl("replace", "-o", "json", "-f", "-", input_text=json.dumps(body)))
    return replaced


def install_older(kubectl: Kubectl, annotations: dict[str, str]) -> dict[str, JSON]:
    """Each CRD as an older version left it: its last printer column missing. The objects as replaced."""
    older = {}
    for name, crd in bundled().items():
        version = {**crd["spec"]["versions"][0]}
        version["additionalPrinterColumns"] = version["additionalPrinterColumns"][:-1]
        old = {**crd, "spec": {**crd["spec"], "versions": [version]}}
        older[name] = replace(kubectl, old, annotations)
        assert columns(older[name]) == columns(crd)[:-1]
    return older


@pytest.fixture(scope="module")
def operator_kubeconfig(kubectl: Kubectl, kubeconfig: Path, goqueue_crds: list[str],
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The operator's ServiceAccount token; the live CRDs are restored to crds/ (original annotations) after."""
    install_operator_rbac(kubectl)
    originals = {name: (live(kubectl, name)["metadata"].get("annotations") or {}) for name in goqueue_crds}
    yield service_account_kubeconfig(kubectl, kubeconfig, tmp_path_factory.mktemp("crd-upgrade") / "kubeconfig")
    for name, crd in bundled().items():
        replace(kubectl, crd, originals[name])
        assert columns(live(kubectl, name)) == columns(crd)


DECISIONS = ("crd.applied", "crd.skipped", "crd.unmanaged")


def run_operator(kubeconfig: Path, log_path: Path, namespace: str, **env: str) -> list[JSON]:
    """Start goqueue-operator, wait until it logged its decision about the CRDs (one event per CRD, or one
    `crd.unmanaged`), stop it; those log events."""
    process = OperatorProcess(kubeconfig, log_path, env={
        "GOQUEUE_OPERATOR_NAMESPACES": namespace, "GOQUEUE_OPERATOR_STANDALONE": "true", **env}).start()
    try:
        def decided() -> list[JSON] | None:
            events = [e for e in process.log_events() if e.get("message") in DECISIONS]
            done = any(e["message"] == "crd.unmanaged" for e in events) or len(events) >= len(bundled())
            return events if done else None

        events = wait_until(decided, 60, message="goqueue-operator logs its decision about the CRDs")
    finally:
        code = process.stop()
    assert code == 0, f"goqueue-operator exited with {code}:\n{process.tail()}"
    assert problems_in_log(process.log_text()) == []
    return events


def test_an_older_crd_is_upgraded_at_start(operator_kubeconfig: Path, kubectl: Kubectl, module_namespace: str,
                                           tmp_path: Path) -> None:
    older = install_older(kubectl, annotations={})  # as helm's crds/ or kubectl left it: no operator annotation
    events = run_operator(operator_kubeconfig, tmp_path / "operator.log", module_namespace)
    assert sorted((e["message"], e["crd"]) for e in events) == [("crd.applied", name) for name in sorted(older)]
    for name, crd in bundled().items():
        upgraded = live(kubectl, name)
        assert columns(upgraded) == columns(crd)  # the missing column is back
        assert upgraded["metadata"]["annotations"][ANNOTATION] == __version__
        assert upgraded["spec"]["versions"][0]["schema"] == crd["spec"]["versions"][0]["schema"]
        appliers = [m for m in upgraded["metadata"]["managedFields"]
                    if m["manager"] == "goqueue-operator" and m["operation"] == "Apply"]
        assert len(appliers) == 1, upgraded["metadata"]["managedFields"]


def test_a_crd_written_by_a_newer_operator_is_left_alone(operator_kubeconfig: Path, kubectl: Kubectl,
                                                         module_namespace: str, tmp_path: Path) -> None:
    older = install_older(kubectl, annotations={ANNOTATION: "99.0.0"})
    events = run_operator(operator_kubeconfig, tmp_path / "operator.log", module_namespace)
    for name, before in older.items():
        after = live(kubectl, name)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert columns(after) == columns(bundled()[name])[:-1]
    assert sorted((e["message"], e["crd"]) for e in events) == [("crd.skipped", name) for name in sorted(older)]
    assert all("newer operator 99.0.0" in e["reason"] for e in events)


def test_with_management_off_the_crds_are_left_alone(operator_kubeconfig: Path, kubectl: Kubectl,
                                                      module_namespace: str, tmp_path: Path) -> None:
    older = install_older(kubectl, annotations={})
    events = run_operator(operator_kubeconfig, tmp_path / "operator.log", module_namespace,
                          GOQUEUE_OPERATOR_MANAGE_CRDS="false")
    for name, before in older.items():
        after = live(kubectl, name)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert ANNOTATION not in (after["metadata"].get("annotations") or {})
    (event,) = events
    assert event["message"] == "crd.unmanaged"
    assert sorted(event["crds"]) == sorted(older)


def test_the_service_account_may_patch_only_the_goqueue_crds(operator_kubeconfig: Path, kubectl: Kubectl) -> None:
    def can(*args: str) -> str:
        return kubectl("auth", "can-i", *args, AS_OPERATOR, check=False).strip()

    for name in bundled():
        assert can("patch", f"customresourcedefinitions/{name}") == "yes"
        assert can("get", f"customresourcedefinitions/{name}") == "yes"
        assert can("delete", f"customresourcedefinitions/{name}") == "no"
    for other in ("clusterkopfpeerings.kopf.dev", "certificates.cert-manager.io"):
        assert can("patch", f"customresourcedefinitions/{other}") == "no"
    assert can("create", "customresourcedefinitions") == "no"
    assert can("update", "customresourcedefinitions/goqueuetopics.goqueue.io") == "no"
