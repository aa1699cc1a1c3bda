#!/usr/bin/env python3
"""Write charts/<chart>/README.md for both charts from values.schema.json (key, type, description) and values.yaml
(default), helm-docs style; `--check` fails when one is stale. The schema is the source: it covers every value with
a description (tests/unit/charts), so the README cannot miss one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHARTS = [REPO / "charts" / "goqueue", REPO / "charts" / "goqueue-operator"]
MISSING = object()


def type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    return " \\| ".join(kind) if isinstance(kind, list) else str(kind)


def default_of(values: Any, path: list[str]) -> str:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return "(unset)"
        values = values[key]
    return f"`{json.dumps(values, separators=(', ', ': '))}`"


def rows(schema: dict[str, Any], values: Any, path: list[str]) -> list[str]:
    found = []
    for key, sub in schema.get("properties", {}).items():
        here = [*path, key]
        if sub.get("properties"):  # an object of named values: its leaves are the rows
            found.extend(rows(sub, values, here))
            continue
        description = " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")
        found.append(f"| `{'.'.join(here)}` | {type_of(sub)} | {default_of(values, here)} | {description} |")
    return found


def render(chart: Path) -> str:
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    description = " ".join(str(meta["description"]).split())
    lines = [
        f"# {meta['name']}", "",
        f"{description}", "",
        f"Chart version {meta['version']}, app version {meta['appVersion']}, Kubernetes {meta['kubeVersion']}.", "",
        "Generated from `values.schema.json` and `values.yaml` by `scripts/gen_chart_values_docs.py`; do not edit "
        "by hand. `values.yaml` explains each value at length; the schema refuses unknown keys, and "
        "`templates/validation.yaml` refuses combinations that cannot work, with the fix. `helm test <release>` "
        "runs the chart's test Pod.", "",
        "## Values", "",
        "| key | type | default | description |",
        "|---|---|---|---|",
        *rows(schema, values, []),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    stale = []
    for chart in CHARTS:
        text, target = render(chart), chart / "README.md"
        if "--check" in sys.argv:
            if not target.exists() or target.read_text() != text:
                stale.append(target)
        else:
            target.write_text(text)
    for target in stale:
        print(f"{target.relative_to(REPO)} is stale: run python scripts/gen_chart_values_docs.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
