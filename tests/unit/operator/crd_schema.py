"""Read the CRDs in crds/ (the schema of record) for the operator's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CRD_DIR = Path(__file__).resolve().parents[3] / "crds"
JSON = dict[str, Any]


def load_crds() -> dict[str, JSON]:
    """kind → CRD document, for every file in crds/."""
    crds: dict[str, JSON] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        crds[doc["spec"]["names"]["kind"]] = doc
    return crds


def version_of(crd: JSON, name: str = "v1alpha1") -> JSON:
    return next(v for v in crd["spec"]["versions"] if v["name"] == name)


def root_schema(crd: JSON) -> JSON:
    schema: JSON = version_of(crd)["schema"]["openAPIV3Schema"]
    return schema


def walk_properties(schema: JSON, path: str = "") -> Iterator[tuple[str, JSON]]:
    """(dotted path, schema) of every named property below `schema`, depth first; array items are `path[]`."""
    for name, prop in schema.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        yield here, prop
        yield from walk_properties(prop, here)
        if "items" in prop:
            yield from walk_properties(prop["items"], here + "[]")


def walk_rules(schema: JSON, path: str = "") -> Iterator[tuple[str, JSON]]:
    """(path, rule) of every x-kubernetes-validations rule at or below `schema`."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for name, prop in schema.get("properties", {}).items():
        yield from walk_rules(prop, f"{path}.{name}" if path else name)
    if "items" in schema:
        yield from walk_rules(schema["items"], path + "[]")
