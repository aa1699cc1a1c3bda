"""The load tool's verdicts on what its consumers received: a record stored twice, or a producer's records out of
order within a partition, fail the run (deploy/testing/load/goqueue_load.py, loaded from its path)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from goqueue.models import DeliveredRecord

pytestmark = pytest.mark.unit

TOOL = Path(__file__).resolve().parents[2] / "deploy" / "testing" / "load" / "goqueue_load.py"


@pytest.fixture(scope="module")
def tool() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("goqueue_load", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def delivered(tool: ModuleType, partition: int, offset: int, record_id: str) -> DeliveredRecord:
    return DeliveredRecord(topic="t", partition=partition, offset=offset, timestamp_ms=0, key=None, value="x",
                           headers={tool.ID_HEADER: record_id})


def test_records_once_and_in_order_pass(tool: ModuleType) -> None:
    stats = tool.Stats(0)
    tool._account([delivered(tool, 0, 0, "0-0"), delivered(tool, 0, 1, "0-1"), delivered(tool, 1, 0, "1-0"),
                   delivered(tool, 0, 1, "0-1")], stats)  # a redelivery of the same offset is not a duplicate
    assert (tool.duplicated_records(stats), tool.out_of_order_records(stats)) == (0, 0)


def test_a_record_stored_twice_or_a_producer_going_backwards_fails(tool: ModuleType) -> None:
    stats = tool.Stats(0)
    tool._account([delivered(tool, 0, 0, "0-0"), delivered(tool, 0, 1, "0-1"), delivered(tool, 0, 2, "0-0"),
                   delivered(tool, 1, 0, "1-5"), delivered(tool, 1, 1, "1-4")], stats)
    assert tool.duplicated_records(stats) == 1
    assert tool.out_of_order_records(stats) == 2  # 0-0 again after 0-1, and 1-4 after 1-5
