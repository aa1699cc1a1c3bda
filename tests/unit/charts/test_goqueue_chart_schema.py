"""charts/goqueue read as files, no helm: the ci/ scenarios exist, values.schema.json covers every value (closed
objects, every key described), its broker settings are exactly the broker's own keys minus those the chart sets per
pod, and the chart links to the shared observability files. Rendering and linting with helm (a subprocess) are the
integration tests in tests/integration/chart_render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from goqueue.config import all_keys

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "goqueue"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
# Set per pod by the chart (ordinal, pod IP, DNS name, peer list, Secret): never from values.config.
MANAGED_KEYS = {"broker.id", "broker.host", "broker.advertisedHost", "cluster.peers", "cluster.password",
                "cluster.passwordFile", "tls.certFile", "tls.keyFile", "tls.caFile", "security.adminUser",
                "security.adminPasswordFile"}
# Kubernetes objects passed through as written (their schema is the API server's).
FREE_FORM = {"affinity", "podSecurityContext", "containerSecurityContext"}


def test_there_are_ci_scenarios() -> None:
    assert {p.name for p in SCENARIOS} >= {"default-values.yaml", "production-values.yaml",
                                          "single-broker-values.yaml", "monitoring-values.yaml",
                                          "five-brokers-values.yaml"}


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


def test_the_chart_links_to_the_shared_observability_files() -> None:
    link = CHART / "files" / "observability"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "deploy" / "observability").resolve()
