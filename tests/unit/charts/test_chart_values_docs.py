"""charts/*/README.md are generated from each chart's values.schema.json and values.yaml
(scripts/gen_chart_values_docs.py): what `--check` compares, run in this process, and every value has its row."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def generator() -> ModuleType:
    script = REPO / "scripts" / "gen_chart_values_docs.py"
    spec = importlib.util.spec_from_file_location("gen_chart_values_docs", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leaves(schema: dict[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key, sub in schema.get("properties", {}).items():
        found.extend(leaves(sub, f"{prefix}{key}.") if sub.get("properties") else [prefix + key])
    return found


@pytest.mark.parametrize("chart", ["goqueue", "goqueue-operator"])
def test_the_values_readme_is_generated_from_the_schema(chart: str) -> None:
    path = REPO / "charts" / chart
    readme = (path / "README.md").read_text()
    assert generator().render(path) == readme, (
        f"charts/{chart}/README.md is stale: run python scripts/gen_chart_values_docs.py")
    documented = [line.split("`")[1] for line in readme.splitlines() if line.startswith("| `")]
    assert documented == leaves(json.loads((path / "values.schema.json").read_text()))
    assert "| `replicaCount` | integer | " in readme
