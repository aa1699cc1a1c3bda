#!/usr/bin/env python3
"""Write docs/CRD_REFERENCE.md from crds/*.yaml (the schema of record); `--check` fails when it is stale.

Per kind and version: names, scope, printer columns, subresources, then every field of spec and status
(path, type, default, constraints, description) and every CEL rule (x-kubernetes-validations) at the path where
it sits. Field order is the schema's own; files are read in sorted order, so the output is deterministic.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = ROOT / "crds"
TARGET = ROOT / "docs" / "CRD_REFERENCE.md"

Schema = dict[str, Any]


@dataclass(frozen=True)
class Field:
    """One node of a structural schema: `spec.offsetResets[].id`, `spec.config.<key>`."""

    path: str
    schema: Schema
    required: bool


def load_crds(crd_dir: Path = CRD_DIR) -> list[tuple[Path, Schema]]:
    """Every CustomResourceDefinition in crd_dir/*.yaml, by file name (a file may hold several documents)."""
    found = []
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append((path, doc))
    return found


# Keys of apiextensions.k8s.io/v1 JSONSchemaProps; anything else in a schema node is a mistake (a YAML flow
# mapping split at a comma inside a description, say) that the API server drops: reported on stderr.
SCHEMA_KEYS = frozenset({
    "id", "$schema", "$ref", "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum",
    "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "multipleOf", "enum", "maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf", "not",
    "properties", "additionalProperties", "patternProperties", "dependencies", "additionalItems", "definitions",
    "externalDocs", "example", "nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
    "x-kubernetes-validations",
})


def unknown_keys(fields: list[Field]) -> list[str]:
    """`path: key` for every schema key that is not a JSONSchemaProps field."""
    return [f"{item.path}: {key!r}" for item in fields for key in item.schema if key not in SCHEMA_KEYS]


def walk(path: str, schema: Schema, *, required: bool = False) -> Iterator[Field]:
    """The node itself, then its properties (schema order), array items (`[]`) and map values (`<key>`)."""
    yield Field(path, schema, required)
    required_children = set(schema.get("required", []))
    for name, child in (schema.get("properties") or {}).items():
        yield from walk(f"{path}.{name}", child, required=name in required_children)
    items = schema.get("items")
    if isinstance(items, dict):
        yield from walk(f"{path}[]", items)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from walk(f"{path}.<key>", extra)


# ---------------------------------------------------------------------------------------------------- markdown


def code(text: str) -> str:
    """An inline code span that survives a table cell: pipes escaped, fence longer than any backtick run."""
    text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def prose(text: str) -> str:
    """Schema prose as one table-safe line: whitespace collapsed, markdown and HTML specials escaped."""
    text = " ".join(str(text).split())
    return re.sub(r"([\\`*_<|\[\]])", r"\\\1", text)


def literal(value: Any) -> str:
    """A default or enum value as JSON (so "3" and 3 differ), keys sorted."""
    return code(json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell or "" for cell in row) + " |" for row in rows]
    return lines


# ---------------------------------------------------------------------------------------------------- fields


def type_of(schema: Schema) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        kind = "int-or-string"
    elif "type" in schema:
        kind = str(schema["type"])
        if kind == "array" and isinstance(schema.get("items"), dict) and "type" in schema["items"]:
            kind = f"array of {schema['items']['type']}"
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict) and "properties" not in schema:
            value = schema["additionalProperties"]
            value_type = "int-or-string" if value.get("x-kubernetes-int-or-string") else value.get("type", "any")
            kind = f"map of {value_type}"
    elif "anyOf" in schema:
        kind = " or ".join(str(option.get("type", "?")) for option in schema["anyOf"])
    else:
        kind = "any"
    if "format" in schema:
        kind += f" ({schema['format']})"
    return kind


BOUNDS = [
    ("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
    ("minLength", "length ≥"), ("maxLength", "length ≤"),
    ("minItems", "items ≥"), ("maxItems", "items ≤"),
    ("minProperties", "keys ≥"), ("maxProperties", "keys ≤"),
    ("multipleOf", "multiple of"),
]


def value_constraints(schema: Schema) -> list[str]:
    """OpenAPI constraints on the value: enum, bounds, pattern."""
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(literal(value) for value in schema["enum"]))
    for key, word in BOUNDS:
        if key in schema and not isinstance(schema[key], bool):
            parts.append(f"{word} {schema[key]}")
    # OpenAPI v3.0 boolean exclusive bounds qualify minimum/maximum.
    parts += [f"{bound} exclusive" for bound, key in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum"))
              if schema.get(key) is True]
    if "pattern" in schema:
        parts.append("pattern " + code(schema["pattern"]))
    if schema.get("uniqueItems"):
        parts.append("unique items")
    if schema.get("nullable"):
        parts.append("nullable")
    return parts


def kubernetes_constraints(schema: Schema) -> list[str]:
    """The x-kubernetes-* extensions: list and map semantics, pruning, CEL rules (listed in their own table)."""
    parts = []
    if "x-kubernetes-list-type" in schema:
        parts.append(f"list type {schema['x-kubernetes-list-type']}")
    if "x-kubernetes-list-map-keys" in schema:
        parts.append("map keys " + ", ".join(code(key) for key in schema["x-kubernetes-list-map-keys"]))
    if "x-kubernetes-map-type" in schema:
        parts.append(f"map type {schema['x-kubernetes-map-type']}")
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        parts.append("unknown fields kept")
    if schema.get("x-kubernetes-embedded-resource"):
        parts.append("embedded resource")
    rules = schema.get("x-kubernetes-validations") or []
    if rules:
        parts.append(f"CEL rules: {len(rules)}")
    return parts


def constraints(item: Field) -> str:
    return "; ".join([*(["required"] if item.required else []), *value_constraints(item.schema),
                      *kubernetes_constraints(item.schema)])


def field_rows(fields: list[Field]) -> list[list[str]]:
    return [
        [
            code(item.path),
            prose(type_of(item.schema)),
            literal(item.schema["default"]) if "default" in item.schema else "",
            constraints(item),
            prose(item.schema.get("description", "")),
        ]
        for item in fields
    ]


RULE_KEYS = ["messageExpression", "reason", "fieldPath", "optionalOldSelf"]


def rule_rows(fields: list[Field]) -> list[list[str]]:
    rows = []
    for item in fields:
        for rule in item.schema.get("x-kubernetes-validations") or []:
            message = prose(rule.get("message", ""))
            extra = [f"{key}: {code(str(rule[key]))}" for key in RULE_KEYS if key in rule]
            rows.append([code(item.path), code(" ".join(str(rule["rule"]).split())),
                         "; ".join([message, *extra]) if message else "; ".join(extra)])
    return rows


# ---------------------------------------------------------------------------------------------------- document


def anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def render_version(path: Path, crd: Schema, version: Schema) -> list[str]:
    spec = crd["spec"]
    names = spec["names"]
    title = f"{names['kind']} ({spec['group']}/{version['name']})"
    schema = version.get("schema", {}).get("openAPIV3Schema", {})
    properties = schema.get("properties") or {}
    flags = ", ".join(flag for flag in ("served", "storage", "deprecated") if version.get(flag))
    lines = [f"## {title}", ""]
    if schema.get("description"):
        lines += [prose(schema["description"]), ""]
    lines += table(["property", "value"], [
        ["CRD", f"{code(crd['metadata']['name'])} ([{path.name}](../crds/{path.name}))"],
        ["group / version", f"{code(spec['group'])} / {code(version['name'])}" + (f" ({flags})" if flags else "")],
        ["scope", spec.get("scope", "")],
        ["kind / list kind", f"{code(names['kind'])} / {code(names.get('listKind', names['kind'] + 'List'))}"],
        ["plural / singular", f"{code(names['plural'])} / {code(names.get('singular', ''))}"],
        ["short names", ", ".join(code(n) for n in names.get("shortNames", [])) or "none"],
        ["categories", ", ".join(code(n) for n in names.get("categories", [])) or "none"],
    ])
    if version.get("deprecationWarning"):
        lines += ["", f"Deprecated: {prose(version['deprecationWarning'])}"]

    columns = version.get("additionalPrinterColumns") or []
    lines += ["", "### Printer columns", ""]
    if columns:
        # priority > 0: shown only by `kubectl get -o wide`; the column appears when any column has one.
        wide = any(column.get("priority", 0) for column in columns)
        header = ["column", "type", "JSONPath", *(["priority"] if wide else []), "description"]
        lines += table(header, [
            [prose(column["name"]), prose(column["type"] + (f" ({column['format']})" if "format" in column else "")),
             code(column["jsonPath"]), *([str(column.get("priority", 0))] if wide else []),
             prose(column.get("description", ""))]
            for column in columns
        ])
    else:
        lines.append("None: `kubectl get` shows NAME and AGE.")

    subresources = version.get("subresources") or {}
    lines += ["", "### Subresources", ""]
    if "status" in subresources:
        lines.append("- `status`: `.status` is written through `/status` only; a spec update ignores it.")
    if "scale" in subresources:
        scale = subresources["scale"]
        parts = [f"{key} {code(scale[key])}" for key in ("specReplicasPath", "statusReplicasPath", "labelSelectorPath")
                 if key in scale]
        lines.append("- `scale` (`kubectl scale`, HorizontalPodAutoscaler): " + ", ".join(parts) + ".")
    if not subresources:
        lines.append("None.")

    all_fields: list[Field] = []
    for part in ("spec", "status"):
        if part not in properties:
            continue
        fields = list(walk(part, properties[part], required=part in schema.get("required", [])))
        all_fields += fields
        for problem in unknown_keys(fields):
            print(f"warning: {path.name} {names['kind']}/{version['name']} {problem} is not a schema key "
                  "(the API server drops it)", file=sys.stderr)
        lines += ["", f"### {part.capitalize()} fields", ""]
        lines += table(["path", "type", "default", "constraints", "description"], field_rows(fields))

    rules = rule_rows(all_fields)
    lines += ["", "### Validation rules (CEL)", ""]
    if rules:
        lines += ["Checked by the API server on create and update (rules that use `oldSelf` on update only); the "
                  "message is what `kubectl` prints when a rule refuses an object.", ""]
        lines += table(["path", "rule", "message"], rules)
    else:
        lines.append("None.")
    return lines


def render(crd_dir: Path = CRD_DIR) -> str:
    sections: list[list[str]] = []
    titles = []
    for path, crd in load_crds(crd_dir):
        for version in crd["spec"]["versions"]:
            section = render_version(path, crd, version)
            titles.append(section[0].removeprefix("## "))
            sections.append(section)
    lines = [
        "# GoQueue CRD reference",
        "",
        "Generated from `crds/*.yaml` by `scripts/gen_crd_docs.py`; do not edit by hand (run "
        "`python scripts/gen_crd_docs.py`; a unit test fails when this file is stale). The operator's behaviour "
        "is in [OPERATOR.md](OPERATOR.md).",
        "",
        "Paths: `a.b` is a property, `a[]` an array item, `a.<key>` the value of any key of a map. Defaults are "
        "JSON and filled in by the API server; constraints are checked by it (OpenAPI schema and CEL rules).",
        "",
    ]
    lines += [f"- [{title}](#{anchor(title)})" for title in titles]
    for section in sections:
        lines += ["", *section]
    return "\n".join(lines) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python scripts/gen_crd_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
