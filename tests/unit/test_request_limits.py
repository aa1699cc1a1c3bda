"""The pure decisions behind the resource limits: which body limit applies, counting records, Raft frame caps."""

from __future__ import annotations

import json
import struct

import pytest

from goqueue.api.http.request_limits import body_limit, too_many_records
from goqueue.config import LimitsSection
from goqueue.replication.raft_transport import frame_too_large

pytestmark = pytest.mark.unit

LIMITS = LimitsSection.model_validate({"maxRequestBytes": "64MiB", "maxJsonRequestBytes": "4MiB"})


def test_binary_batches_get_the_request_limit_and_everything_else_the_json_one() -> None:
    assert body_limit(LIMITS, "POST", "/v1/topics/t/partitions/3/batches") == (64 * 2**20, "limits.maxRequestBytes")
    assert body_limit(LIMITS, "POST", "/v1/topics/t/records") == (4 * 2**20, "limits.maxJsonRequestBytes")
    assert body_limit(LIMITS, "PUT", "/v1/topics/t/partitions/3/batches")[1] == "limits.maxJsonRequestBytes"
    assert body_limit(LIMITS, "POST", "/v1/topics/t/partitions/3/batches/x")[1] == "limits.maxJsonRequestBytes"


def _produce(count: int, **record: object) -> bytes:
    return json.dumps({"records": [{"value": "v", **record}] * count}).encode()


def test_records_over_the_limit_are_counted_and_those_within_are_not() -> None:
    assert too_many_records(_produce(11), 10) == 11
    assert too_many_records(_produce(10), 10) is None
    # Headers are objects too: more braces than records, yet within the limit once parsed.
    assert too_many_records(_produce(10, headers={"h": "1"}), 10) is None
    # Braces inside values are text, not records.
    assert too_many_records(_produce(2, value="{" * 50), 10) is None


def test_bodies_that_are_not_a_produce_are_left_to_the_route() -> None:
    assert too_many_records(b"{" * 100, 10) is None            # not JSON: the route answers INVALID_REQUEST
    assert too_many_records(b"[" + b"{}," * 50 + b"{}]", 10) is None  # no records field
    assert too_many_records(json.dumps({"records": {"a": {}}}).encode() * 1, 0) is None


def test_raft_frames_are_judged_by_their_announced_length_before_they_arrive() -> None:
    cap = 65536
    assert frame_too_large(struct.pack("i", 2**31 - 1), cap)      # 2 GiB announced: refused at the prefix
    assert frame_too_large(struct.pack("i", -1), cap)              # a negative length
    assert not frame_too_large(struct.pack("i", cap) + b"x" * 100, cap)
    assert not frame_too_large(b"\x00\x01", cap)                   # the prefix is not complete yet
    # Many small frames queued unparsed: the buffer itself is bounded.
    assert frame_too_large(struct.pack("i", 10) + b"x" * (2 * cap + 10), cap)
