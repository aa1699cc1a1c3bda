"""Every JSON answer of the HTTP API is documented in its OpenAPI document by a named model of `goqueue.models` (the
model the client parses it with), not an anonymous object: `/docs` shows each field."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from goqueue import models
from goqueue.api.http.app import create_app
from goqueue.config import Settings
from goqueue.metrics import BrokerMetrics

pytestmark = pytest.mark.unit

# Answers still documented as a plain object: the offset lookup (its dict comes from the broker core).
UNMODELLED = {("get", "/v1/topics/{topic}/partitions/{partition}/offsets")}


def _openapi() -> dict[str, Any]:
    stand_in = SimpleNamespace(settings=Settings(), metrics=BrokerMetrics())  # the document needs the routes only
    return create_app(broker=stand_in).openapi()  # type: ignore[arg-type]


def _named_model(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
    return ref.rpartition("/")[2] if isinstance(ref, str) else None


def test_every_json_answer_is_a_named_model_of_goqueue_models() -> None:
    anonymous = []
    for path, operations in _openapi()["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if not status.startswith("2") or schema is None or (method, path) in UNMODELLED:
                    continue
                name = _named_model(schema)
                if name is None or not hasattr(models, name):
                    anonymous.append(f"{method.upper()} {path} {status}: {schema}")
    assert not anonymous, "\n".join(anonymous)
