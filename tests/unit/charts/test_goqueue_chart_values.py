"""charts/goqueue values: `helm lint` of every ci/ scenario, the schema covering every key (closed objects), the
broker settings in the schema matching the broker's own keys, and validation.yaml refusing what breaks the quorum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_chart import CHART, Helm

from goqueue.config import all_keys, load_settings

pytestmark = pytest.mark.unit

SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
# Set per pod by the chart (ordinal, pod IP, DNS name, peer list, Secret): never from values.config.
MANAGED_KEYS = {"broker.id", "broker.host", "broker.advertisedHost", "cluster.peers", "cluster.password"}
# Kubernetes objects passed through as written (their schema is the API server's).
FREE_FORM = {"affinity", "podSecurityContext", "containerSecurityContext"}


def test_there_are_ci_scenarios() -> None:
    assert {p.name for p in SCENARIOS} >= {"default-values.yaml", "production-values.yaml",
                                          "single-broker-values.yaml", "monitoring-values.yaml",
                                          "five-brokers-values.yaml"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_lint_and_render_every_scenario(helm: Helm, scenario: Path, tmp_path: Path) -> None:
    lint = helm.lint("-f", str(scenario))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "[ERROR]" not in lint.stdout
    assert "[WARNING]" not in lint.stdout
    rendered = helm.template(values_files=[scenario])
    config = rendered.get("ConfigMap", "goqueue-config")["data"]["goqueue.yaml"]
    (tmp_path / "goqueue.yaml").write_text(config)
    statefulset = rendered.get("StatefulSet", "goqueue")
    peers = next(e["value"] for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
                 if e["name"] == "GOQUEUE_CLUSTER_PEERS")
    # The broker accepts the rendered file as its last pod (highest ordinal) would load it.
    last = statefulset["spec"]["replicas"] - 1
    load_settings(tmp_path / "goqueue.yaml", {"GOQUEUE_BROKER_ID": str(last), "GOQUEUE_BROKER_HOST": "10.0.0.9",
                                              "GOQUEUE_CLUSTER_PEERS": peers, "GOQUEUE_CLUSTER_PASSWORD": "x"})


def _schema_paths(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    paths = {}
    for key, sub in schema.get("properties", {}).items():
        paths[prefix + key] = sub
        paths.update(_schema_paths(sub, f"{prefix}{key}."))
    return paths


def _value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        paths.append(prefix + key)
        if isinstance(value, dict) and value and key not in FREE_FORM and not prefix.endswith("labels."):
            paths.extend(_value_paths(value, f"{prefix}{key}."))
    return paths


def test_the_schema_covers_every_value_and_closes_every_object() -> None:
    schema_paths = _schema_paths(SCHEMA)
    maps = {p for p, s in schema_paths.items() if isinstance(s.get("additionalProperties"), dict)}
    missing = [p for p in _value_paths(VALUES) if p not in schema_paths
               and not any(p.startswith(m + ".") for m in maps)]
    assert missing == [], f"values.yaml keys without a schema: {missing}"
    assert SCHEMA["additionalProperties"] is False
    open_objects = [p for p, s in schema_paths.items() if s.get("type") == "object"
                    and "additionalProperties" not in s and p not in FREE_FORM]
    assert open_objects == [], f"objects that accept unknown keys: {open_objects}"
    undocumented = [p for p, s in schema_paths.items() if not s.get("description")]
    assert undocumented == [], f"schema keys without a description: {undocumented}"


def test_the_schema_offers_exactly_the_brokers_settings_minus_the_managed_ones() -> None:
    config = SCHEMA["properties"]["config"]["properties"]
    offered = {f"{section}.{key}" for section, body in config.items() for key in body["properties"]}
    assert offered == set(all_keys()) - MANAGED_KEYS


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
