"""docs/CRD_REFERENCE.md is generated from crds/*.yaml and says what the CRDs say.

The freshness check renders with the generator and compares; the content checks read the CRDs here, independently of the
generator's own walk, and look for each fact in the committed document: every spec and status field path with its
default, enum values and bounds, every printer column, every CEL rule and message at the path where it sits.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gen_crd_docs.py"
DOC = REPO / "docs" / "CRD_REFERENCE.md"
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))


def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in CRD_FILES]


def field_paths(path: str, schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from field_paths(f"{path}.{name}", child)
    if isinstance(schema.get("items"), dict):
        yield from field_paths(f"{path}[]", schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        yield from field_paths(f"{path}.<key>", schema["additionalProperties"])


def section(text: str, heading: str, level: int) -> str:
    """The body under the first heading of `level` that starts with `heading`, up to the next one as high."""
    marks = "#" * level
    match = re.search(rf"^{marks} {re.escape(heading)}.*$", text, flags=re.MULTILINE)
    assert match, f"no heading {marks} {heading}"
    end = re.search(rf"^#{{1,{level}}} ", text[match.end():], flags=re.MULTILINE)
    return text[match.end(): match.end() + end.start() if end else len(text)]


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def unescape(cell: str) -> str:
    """A table cell as a reader sees it: code fences off, backslash escapes resolved."""
    if cell.startswith("`") and cell.endswith("`"):
        return cell.strip("`").strip().replace("\\|", "|")
    return re.sub(r"\\(.)", r"\1", cell)


def rows(body: str) -> list[list[str]]:
    """The body rows of the tables in body (header rows, those followed by |---, left out)."""
    lines = body.splitlines()
    return [cells(line) for line, after in zip(lines, [*lines[1:], ""], strict=True)
            if line.startswith("| ") and not after.startswith("|---")]


def kind_sections() -> Iterator[tuple[dict[str, Any], dict[str, Any], str]]:
    text = DOC.read_text()
    for crd in crds():
        for version in crd["spec"]["versions"]:
            title = f"{crd['spec']['names']['kind']} ({crd['spec']['group']}/{version['name']})"
            yield crd, version, section(text, title, 2)


def test_reference_is_generated_from_the_crds() -> None:
    # What `gen_crd_docs.py --check` compares, run in this process (a unit test starts no subprocess).
    assert load_generator().render() == DOC.read_text(), f"{DOC} is stale: run python scripts/gen_crd_docs.py"


def test_every_kind_has_its_names_columns_and_subresources() -> None:
    found = list(kind_sections())
    assert len(found) == len(CRD_FILES) == 5
    for crd, version, body in found:
        spec, names = crd["spec"], crd["spec"]["names"]
        facts = {unescape(row[0]): row[1] for row in rows(body.split("###")[0]) if len(row) == 2}
        assert f"`{crd['metadata']['name']}`" in facts["CRD"]
        assert f"`{spec['group']}` / `{version['name']}`" in facts["group / version"]
        assert facts["scope"] == spec["scope"]
        assert facts["short names"] == ", ".join(f"`{n}`" for n in names["shortNames"])
        assert facts["categories"] == ", ".join(f"`{n}`" for n in names["categories"])
        columns = {unescape(row[0]): row for row in rows(section(body, "Printer columns", 3))}
        assert list(columns) == [column["name"] for column in version["additionalPrinterColumns"]]
        for column in version["additionalPrinterColumns"]:
            assert unescape(columns[column["name"]][2]) == column["jsonPath"]
        subresources = section(body, "Subresources", 3)
        for name in version.get("subresources", {}):
            assert f"- `{name}`" in subresources
        for path in version.get("subresources", {}).get("scale", {}).values():
            assert f"`{path}`" in subresources


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_path_appears_with_its_default_and_constraints(part: str) -> None:
    for _crd, version, body in kind_sections():
        schema = version["schema"]["openAPIV3Schema"]["properties"][part]
        table = {unescape(row[0]): row for row in rows(section(body, f"{part.capitalize()} fields", 3))}
        expected = dict(field_paths(part, schema))
        assert list(table) == list(expected), "rows in schema order, one per field"
        for path, node in expected.items():
            _path, _type, default, constraints, description = table[path]
            if "default" in node:
                assert json.loads(unescape(default)) == node["default"], path
            else:
                assert default == "", path
            for value in node.get("enum", []):
                assert f"`{json.dumps(value)}`" in constraints, (path, value)
            for key in ("minimum", "maximum", "minLength", "maxLength", "maxItems", "maxProperties"):
                if key in node:
                    assert str(node[key]) in constraints, (path, key)
            if "pattern" in node:
                assert node["pattern"].replace("|", "\\|") in constraints, path
            assert unescape(description) == " ".join(node.get("description", "").split()), path


def test_every_cel_rule_appears_at_its_path() -> None:
    total = 0
    for _crd, version, body in kind_sections():
        listed = [(unescape(p), unescape(r), unescape(m)) for p, r, m in rows(section(body, "Validation rules", 3))]
        expected = [
            (path, " ".join(rule["rule"].split()), " ".join(rule["message"].split()))
            for part in ("spec", "status")
            for path, node in field_paths(part, version["schema"]["openAPIV3Schema"]["properties"].get(part, {}))
            for rule in node.get("x-kubernetes-validations", [])
        ]
        assert listed == expected
        total += len(expected)
    assert total >= 15  # the CRDs' immutability, shrink and reference rules: a walk that found none is wrong


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_crd_docs", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


SYNTHETIC = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.io}
spec:
  group: example.io
  scope: Cluster
  names: {kind: Widget, plural: widgets}
  versions:
    - name: v2
      served: true
      storage: true
      additionalPrinterColumns:
        - {name: Size, type: integer, jsonPath: .spec.size, priority: 1}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              description: "Pipes | stars * and <tags> stay literal."
              x-kubernetes-validations:
                - rule: "self.a == 'x' || self.b.matches('`')"
                  message: needs a or b
                  reason: FieldValueInvalid
              properties:
                size: {type: integer, default: 2, minimum: 1}
                quantity: {x-kubernetes-int-or-string: true, default: "1Gi"}
    - name: v1
      served: true
      storage: false
      deprecated: true
      schema:
        openAPIV3Schema: {type: object, properties: {spec: {type: object}}}
"""


def test_generator_on_a_synthetic_crd(tmp_path: Path) -> None:
    (tmp_path / "widgets.yaml").write_text(SYNTHETIC)
    generator = load_generator()
    text = generator.render(tmp_path)
    assert text == generator.render(tmp_path), "deterministic"
    assert "## Widget (example.io/v2)" in text
    assert "## Widget (example.io/v1)" in text
    assert "(served, deprecated)" in text
    assert "| Size | integer | `.spec.size` | 1 |" in text, "priority column when a column has one"
    assert "| property | value |" in text
    assert "Pipes \\| stars \\* and \\<tags> stay literal." in text
    assert "``self.a == 'x' \\|\\| self.b.matches('`')``" in text, "backtick and pipes inside a code span"
    assert "needs a or b; reason: `FieldValueInvalid`" in text
    assert "| `spec.quantity` | int-or-string | `\"1Gi\"` |" in text
    assert "| `spec.size` | integer | `2` | ≥ 1 |" in text
    assert "None: `kubectl get` shows NAME and AGE." in section(text, "Widget (example.io/v1)", 2)
