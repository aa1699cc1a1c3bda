"""The error taxonomy: unique stable codes and complete wire mappings for every class."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import grpc
import pytest

from goqueue.errors import GoQueueError, TopicNotFound, all_error_classes, error_for_code

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes)), codes


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_maps_to_http_grpc_and_exit_code(cls: type[GoQueueError]) -> None:
    assert 400 <= cls.http_status <= 599
    assert hasattr(grpc.StatusCode, cls.grpc_code)
    assert cls.exit_code > 0
    assert cls.__doc__, f"{cls.__name__} needs a docstring: it is the user-facing explanation"
    assert error_for_code(cls.code) is cls


def test_body_shape() -> None:
    body = TopicNotFound("topic 'x' does not exist", topic="x").to_body()
    assert body == {"error": {"code": "TOPIC_NOT_FOUND", "message": "topic 'x' does not exist",
                              "retriable": False, "details": {"topic": "x"}}}


def test_unknown_code_falls_back_to_base() -> None:
    assert error_for_code("SOMETHING_NEWER") is GoQueueError


def test_error_docs_are_generated_from_the_classes() -> None:
    # What `gen_error_docs.py --check` compares, run in this process (a unit test starts no subprocess).
    script = REPO / "scripts" / "gen_error_docs.py"
    spec = importlib.util.spec_from_file_location("gen_error_docs", script)
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    doc = REPO / "docs" / "ERRORS.md"
    assert generator.render() == doc.read_text(), f"{doc} is stale: run python scripts/gen_error_docs.py"
