"""Idempotent producers: a retry gets its original offsets, a gap or a fenced epoch is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from goqueue.errors import OutOfOrderSequence
from goqueue.storage import producers as producers_module
from goqueue.storage.log import AppendResult, PartitionLog

if TYPE_CHECKING:
    from conftest import LogKit

pytestmark = pytest.mark.unit

PID = 1234


def _send(logs: LogKit, plog: PartitionLog, values: list[bytes], seq: int, epoch: int = 0) -> AppendResult:
    return logs.append(plog, values, producer_id=PID, producer_epoch=epoch, base_sequence=seq)


def test_a_retried_batch_gets_its_original_offsets_and_is_not_written_again(logs: LogKit) -> None:
    plog = logs.open()
    logs.append(plog, [b"other"])
    first = _send(logs, plog, [b"a", b"b", b"c"], seq=0)
    size = plog.size_bytes

    retry = _send(logs, plog, [b"a", b"b", b"c"], seq=0)

    assert (first.base_offset, first.last_offset, first.duplicate) == (1, 3, False)
    assert (retry.base_offset, retry.last_offset, retry.duplicate) == (1, 3, True)
    assert (plog.size_bytes, plog.log_end_offset) == (size, 4)
    assert _send(logs, plog, [b"d"], seq=3).base_offset == 4


def test_any_of_the_recent_in_flight_batches_can_be_retried(logs: LogKit) -> None:
    plog = logs.open()
    sent = [_send(logs, plog, [b"v%d" % i], seq=i) for i in range(5)]

    assert [_send(logs, plog, [b"v%d" % i], seq=i).base_offset for i in range(5)] == [r.base_offset for r in sent]
    assert plog.log_end_offset == 5


def test_a_sequence_gap_is_refused(logs: LogKit) -> None:
    plog = logs.open()
    _send(logs, plog, [b"a", b"b"], seq=0)

    with pytest.raises(OutOfOrderSequence, match="expected 2") as gap:
        _send(logs, plog, [b"c"], seq=5)

    assert gap.value.details == {"expected_sequence": 2}
    assert plog.log_end_offset == 2


def test_an_older_epoch_is_fenced_and_a_newer_one_starts_afresh(logs: LogKit) -> None:
    plog = logs.open()
    _send(logs, plog, [b"a"], seq=0, epoch=1)

    with pytest.raises(OutOfOrderSequence, match="fenced"):
        _send(logs, plog, [b"zombie"], seq=1, epoch=0)
    assert _send(logs, plog, [b"b"], seq=0, epoch=2).base_offset == 1
    with pytest.raises(OutOfOrderSequence, match="fenced"):
        _send(logs, plog, [b"c"], seq=1, epoch=1)


def test_producer_state_is_rebuilt_after_a_crash(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=300)
    results = [_send(logs, plog, [b"v%d" % i], seq=i) for i in range(4)]
    logs.publish(plog)
    logs.crash(plog)

    reopened = logs.open(segment_bytes=300)

    retry = _send(logs, reopened, [b"v3"], seq=3)
    assert (retry.duplicate, retry.base_offset) == (True, results[3].base_offset)
    with pytest.raises(OutOfOrderSequence):
        _send(logs, reopened, [b"v9"], seq=9)
    assert _send(logs, reopened, [b"v4"], seq=4).base_offset == 4


def test_truncation_forgets_the_removed_batches(logs: LogKit) -> None:
    plog = logs.open()
    _send(logs, plog, [b"a"], seq=0)
    _send(logs, plog, [b"b"], seq=1)

    plog.truncate_to(1)

    again = _send(logs, plog, [b"b"], seq=1)
    assert (again.duplicate, again.base_offset) == (False, 1)


def test_truncation_keeps_the_batches_below_the_cut_recognisable(logs: LogKit) -> None:
    plog = logs.open()
    _send(logs, plog, [b"a"], seq=0)
    _send(logs, plog, [b"b"], seq=1)
    other = logs.append(plog, [b"x"], producer_id=PID + 1, producer_epoch=0, base_sequence=0)

    plog.truncate_to(other.base_offset)

    retry = _send(logs, plog, [b"b"], seq=1)
    assert (retry.duplicate, retry.base_offset) == (True, 1), "a retry of a batch the cut kept is not written twice"
    assert plog.log_end_offset == 2


def test_a_batch_overlapping_a_written_one_is_refused_not_taken_for_a_retry(logs: LogKit) -> None:
    plog = logs.open()
    _send(logs, plog, [b"a"], seq=0)

    with pytest.raises(OutOfOrderSequence):
        _send(logs, plog, [b"a", b"b"], seq=0)  # same first sequence, another range: not the batch written

    assert plog.log_end_offset == 1


def test_a_full_producer_table_forgets_the_least_recently_used_producer(
    logs: LogKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(producers_module, "MAX_PRODUCERS", 2)
    plog = logs.open()
    for pid in (1, 2, 3):
        logs.append(plog, [b"v%d" % pid], producer_id=pid, producer_epoch=0, base_sequence=0)

    assert len(plog.producers) == 2
    again = logs.append(plog, [b"v1"], producer_id=1, producer_epoch=0, base_sequence=0)
    assert again.duplicate is False, "producer 1 was forgotten: its retry is written again"
    retry = logs.append(plog, [b"v3"], producer_id=3, producer_epoch=0, base_sequence=0)
    assert retry.duplicate is True
