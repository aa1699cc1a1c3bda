"""charts/goqueue values through helm: `helm lint` of every ci/ scenario, the schema refusing unknown and managed
keys, and validation.yaml refusing what breaks the quorum. What the schema file covers is checked without helm by
tests/unit/charts/test_goqueue_chart_schema.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helm_chart import CHART, Helm

from goqueue.config import load_settings

pytestmark = pytest.mark.integration  # helm renders and lints: a subprocess

SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_lint_and_render_every_scenario(helm: Helm, scenario: Path, tmp_path: Path) -> None:
    lint = helm.lint("-f", str(scenario))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "[ERROR]" not in lint.stdout
    assert "[WARNING]" not in lint.stdout
    rendered = helm.template(values_files=[scenario])
    config = rendered.get("ConfigMap", "goqueue-config")["data"]["goqueue.yaml"]
    (tmp_path / "password").write_text("x")
    (tmp_path / "goqueue.yaml").write_text(config.replace("/var/run/goqueue/cluster", str(tmp_path)))
    statefulset = rendered.get("StatefulSet", "goqueue")
    peers = next(e["value"] for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
                 if e["name"] == "GOQUEUE_CLUSTER_PEERS")
    # The broker accepts the rendered file as its last pod (highest ordinal) would load it.
    last = statefulset["spec"]["replicas"] - 1
    load_settings(tmp_path / "goqueue.yaml", {"GOQUEUE_BROKER_ID": str(last), "GOQUEUE_BROKER_HOST": "10.0.0.9",
                                              "GOQUEUE_CLUSTER_PEERS": peers})


def test_the_schema_refuses_unknown_and_managed_keys(helm: Helm) -> None:
    assert "additional properties 'replicas' not allowed" in helm.refusal("--set", "replicas=3")
    assert "additional properties 'cluster' not allowed" in helm.refusal("--set", "config.cluster.peers=a:1")
    assert "additional properties 'id' not allowed" in helm.refusal("--set", "config.broker.id=1")
    assert "retention/maxAge" in helm.refusal("--set", "config.retention.maxAge=forever")
    assert "fsync" in helm.refusal("--set", "config.storage.fsync=sometimes")
    assert "persistence/size" in helm.refusal("--set", "persistence.size=lots")
    # An env value must be a string (the API server would refuse the StatefulSet), and the chart's own are its own.
    assert "got number, want string" in helm.refusal("--set", "extraEnv[0].name=X", "--set", "extraEnv[0].value=1")
    assert "extraEnv/0/name" in helm.refusal("--set", "extraEnv[0].name=GOQUEUE_CLUSTER_PASSWORD",
                                             "--set", "extraEnv[0].value=guess")


@pytest.mark.parametrize(("args", "expected"), [
    (["--set", "replicaCount=2"], "Fix: --set replicaCount=3"),
    (["--set", "pdb.maxUnavailable=2"], "Fix: --set pdb.maxUnavailable=1"),
    (["--set", "replicaCount=5", "--set", "pdb.maxUnavailable=3"], "Fix: --set pdb.maxUnavailable=2"),
    (["--set", "replicaCount=1"], "Fix: --set pdb.enabled=false"),
    (["--set", "config.storage.walDir=/wal"], "Fix: --set config.storage.walDir=/data/wal"),
    (["--set", "config.broker.grpcPort=8080"], "must differ"),
    (["--set", "serviceMonitor.enabled=true", "--set", "metrics.enabled=false"], "Fix: --set metrics.enabled=true"),
], ids=["two-brokers", "pdb-majority-of-3", "pdb-majority-of-5", "single-broker-pdb", "wal-off-volume",
        "port-clash", "servicemonitor-without-metrics"])
def test_validation_refuses_with_a_fix(helm: Helm, args: list[str], expected: str) -> None:
    assert expected in helm.refusal(*args)


@pytest.mark.parametrize(("replicas", "max_unavailable"), [(1, 0), (3, 1), (4, 1), (5, 2), (7, 3)])
def test_the_pdb_may_take_up_to_the_quorum_tolerance(helm: Helm, replicas: int, max_unavailable: int) -> None:
    rendered = helm.template("--set", f"replicaCount={replicas}", "--set", f"pdb.maxUnavailable={max_unavailable}")
    assert rendered.get("PodDisruptionBudget", "goqueue")["spec"]["maxUnavailable"] == max_unavailable
    # Even with the whole budget used, a majority of brokers stays up.
    assert replicas - max_unavailable > replicas // 2
