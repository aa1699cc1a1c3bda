"""charts/goqueue-operator read as files, no helm: its CRDs are identical copies of the schema of record, and
values.schema.json covers every value (closed objects, every key described). Rendering and linting with helm (a
subprocess) are tests/integration/chart_render/test_goqueue_operator_chart.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "goqueue-operator"
CRD_SOURCES = sorted([*(REPO / "crds").glob("*.yaml"), *(REPO / "operator" / "deploy" / "crds").glob("*.yaml")])
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
FREE_FORM = {"affinity", "podSecurityContext", "containerSecurityContext"}  # Kubernetes objects, passed through


OPERATOR_BUNDLE = REPO / "operator" / "goqueue_operator" / "crds"  # what the operator applies at start


def test_the_crds_are_identical_copies_of_the_schema_of_record() -> None:
    copies = sorted((CHART / "crds").glob("*.yaml"))
    assert [p.name for p in copies] == sorted(p.name for p in CRD_SOURCES), "crds/ and the chart's crds/ differ"
    for source in CRD_SOURCES:
        assert (CHART / "crds" / source.name).read_bytes() == source.read_bytes(), (
            f"charts/goqueue-operator/crds/{source.name} differs from {source.relative_to(REPO)}: "
            f"cp {source.relative_to(REPO)} charts/goqueue-operator/crds/")


def test_the_operator_bundles_identical_copies_of_the_goqueue_crds() -> None:
    """The operator's package data (bundled_crds.py applies it at start): crds/ byte for byte, kopf's excluded."""
    sources = sorted((REPO / "crds").glob("*.yaml"))
    assert sorted(p.name for p in OPERATOR_BUNDLE.glob("*.yaml")) == [p.name for p in sources], (
        "crds/ and operator/goqueue_operator/crds/ hold different files: "
        "cp crds/*.yaml operator/goqueue_operator/crds/")
    for source in sources:
        assert (OPERATOR_BUNDLE / source.name).read_bytes() == source.read_bytes(), (
            f"operator/goqueue_operator/crds/{source.name} differs from crds/{source.name}: "
            f"cp crds/{source.name} operator/goqueue_operator/crds/")


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
        if isinstance(value, dict) and value and key not in FREE_FORM:
            paths.extend(_value_paths(value, f"{prefix}{key}."))
    return paths


def test_the_schema_covers_every_value_and_closes_every_object() -> None:
    schema_paths = _schema_paths(SCHEMA)
    assert [p for p in _value_paths(VALUES) if p not in schema_paths] == []
    assert SCHEMA["additionalProperties"] is False
    open_objects = [p for p, s in schema_paths.items() if s.get("type") == "object"
                    and "additionalProperties" not in s and p not in FREE_FORM]
    assert open_objects == []
    assert [p for p, s in schema_paths.items() if not s.get("description")] == []
