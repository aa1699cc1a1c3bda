"""A follower's log: batches appended as the leader stamped them, and a partition's files removed with its topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from goqueue.storage import batch as batches
from goqueue.storage.batch import InvalidBatch
from goqueue.storage.log import PartitionLog

if TYPE_CHECKING:
    from conftest import LogKit

pytestmark = pytest.mark.unit


def _leader_batches(logs: LogKit, count: int, size: int = 40, **producer: int) -> bytes:
    """`count` one-record batches as a leader's log holds them (stamped offsets 0.., epoch 3), read back whole."""
    leader = logs.open(logs.tmp_path / "leader-0", segment_bytes=10**6)
    for i in range(count):
        logs.append(leader, [f"{i:04d}".encode() + b"x" * (size - 4)], **producer)
    logs.publish(leader)
    return leader.read(0, 10**7)


def test_a_follower_keeps_the_leaders_offsets_and_epochs(logs: LogKit) -> None:
    data = _leader_batches(logs, 6)
    follower = logs.open()

    fourth = [pos for pos, _ in batches.iter_headers(data)][3]  # two fetches, whole batches each

    assert follower.append_replicated(data[:fourth]) == follower.log_end_offset == 3
    assert follower.append_replicated(data[fourth:]) == follower.log_end_offset == 6
    logs.publish(follower)
    assert follower.read(0, 10**7) == data, "byte for byte what the leader holds"
    assert {h.leader_epoch for h in follower.batch_headers()} == {3}


def test_a_follower_refuses_a_batch_below_its_log_end_and_writes_nothing(logs: LogKit) -> None:
    data = _leader_batches(logs, 4)
    follower = logs.open()
    follower.append_replicated(data)
    files = logs.files()

    with pytest.raises(InvalidBatch, match="below the log end 4"):
        follower.append_replicated(data)

    assert follower.log_end_offset == 4
    assert logs.files() == files


def test_a_follower_rolls_its_segments_at_the_leaders_batch_boundaries(logs: LogKit) -> None:
    data = _leader_batches(logs, 12)
    follower = logs.open(segment_bytes=300)

    follower.append_replicated(data)

    assert len(follower.segments) > 2
    for older, newer in zip(follower.segments, follower.segments[1:], strict=False):
        assert older.next_offset == newer.base_offset
        assert older.size <= 300
    logs.close(follower)
    reopened = logs.open(segment_bytes=300)
    logs.publish(reopened)
    assert reopened.read(0, 10**7) == data


def test_a_follower_that_becomes_leader_recognises_a_retry_of_a_replicated_batch(logs: LogKit) -> None:
    data = _leader_batches(logs, 1, producer_id=7, producer_epoch=0, base_sequence=0)
    follower = logs.open()
    follower.append_replicated(data)
    retry = batches.build_batch([(None, b"0000" + b"x" * 36, [])], logs.clock.ms, producer_id=7, base_sequence=0)

    result = follower.append(retry, leader_epoch=4)

    assert (result.base_offset, result.last_offset, result.duplicate) == (0, 0, True)
    assert follower.log_end_offset == 1


def test_a_corrupt_replicated_batch_is_refused_after_the_whole_ones_before_it(logs: LogKit) -> None:
    data = bytearray(_leader_batches(logs, 3))
    data[-1] ^= 0xFF
    follower = logs.open()

    with pytest.raises(InvalidBatch, match="CRC mismatch"):
        follower.append_replicated(bytes(data))

    assert follower.log_end_offset == 2


def test_deleting_a_partition_removes_its_directory(logs: LogKit) -> None:
    plog = PartitionLog.open(logs.directory, logs.config(segment_bytes=300), logs.clock)  # not the kit's: deleted
    logs.append(plog, [b"a" * 200])
    logs.append(plog, [b"b" * 200])
    logs.publish(plog)
    plog.checkpoint_high_watermark()
    assert len(plog.segments) == 2

    plog.delete_files()

    assert sorted(p.name for p in logs.tmp_path.iterdir()) == []
    assert plog.segments == []
