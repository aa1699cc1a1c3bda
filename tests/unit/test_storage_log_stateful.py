"""The partition log against an oracle: a plain Python list of records, driven by hypothesis.

Rules append, publish (fdatasync + high watermark), read at random offsets and sizes, truncate, roll, delete the
oldest segment, close and reopen, and crash — optionally damaging the tail of the newest segment file, but only in
its unflushed part, since only flushed records are promised after a crash. After every step the log's offsets must
match the model, and every read must return exactly the model's records.
"""

from __future__ import annotations

import bisect
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from goqueue.errors import OffsetOutOfRange
from goqueue.storage import batch as batches
from goqueue.storage.log import LogConfig, PartitionLog

pytestmark = pytest.mark.unit

NOW_S = 1_700_000_000.0
CONFIG = LogConfig(segment_bytes=512, segment_age_s=10**9, index_interval_bytes=64)

keys = st.none() | st.binary(min_size=1, max_size=4)
values = st.none() | st.binary(max_size=120)
record_lists = st.lists(st.tuples(keys, values), min_size=1, max_size=5)

Row = tuple[bytes | None, bytes | None]
NOTHING_DAMAGED = 2**62  # larger than any offset a run reaches


class PartitionLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="goqueue-stateful-"))
        self.directory = self.tmp / "events-0"
        self.log: PartitionLog | None = self._open()
        self.records: list[Row] = []  # the oracle: record i has offset i
        self.batch_bases: list[int] = []
        self.start = 0
        self.hwm = 0
        self.durable = 0  # records a crash may not lose
        self.checkpoint = 0  # the persisted high watermark: what a reopened log may expose, no more

    def _open(self) -> PartitionLog:
        return PartitionLog.open(self.directory, CONFIG, lambda: NOW_S)

    @property
    def plog(self) -> PartitionLog:
        assert self.log is not None
        return self.log

    def teardown(self) -> None:
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.tmp)

    # -- writes ----------------------------------------------------------------------------------------------

    @rule(rows=record_lists)
    def append(self, rows: list[Row]) -> None:
        batch = batches.build_batch([(k, v, []) for k, v in rows], int(NOW_S * 1000))
        result = self.plog.append(batch, leader_epoch=1)
        assert (result.base_offset, result.last_offset) == (len(self.records), len(self.records) + len(rows) - 1)
        self.batch_bases.append(len(self.records))
        self.records.extend(rows)

    @rule()
    def publish(self) -> None:
        self.plog.flush()
        self.plog.high_watermark = self.plog.flushed_offset
        self.hwm = self.durable = len(self.records)

    @rule()
    def checkpoint_high_watermark(self) -> None:
        self.plog.checkpoint_high_watermark()
        self.checkpoint = self.hwm

    @rule()
    def roll(self) -> None:
        self.plog.roll()
        self.durable = len(self.records)  # rolling seals (fdatasyncs) the previous segment

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, len(self.records)), label="truncate_to")
        self.plog.truncate_to(offset)
        if offset < len(self.records):
            cut = self.batch_bases[bisect.bisect_right(self.batch_bases, offset) - 1]  # the whole batch goes
            del self.records[cut:]
            del self.batch_bases[bisect.bisect_left(self.batch_bases, cut):]
        self.hwm = min(self.hwm, len(self.records))
        self.durable = min(self.durable, len(self.records))
        self.checkpoint = min(self.checkpoint, self.hwm)

    @rule()
    def delete_oldest_segment(self) -> None:
        deleted = self.plog.delete_oldest_segment()
        if deleted is not None:
            assert deleted.base_offset == self.start
            self.start = self.plog.log_start_offset
            assert self.start <= self.hwm
            assert self.start in self.batch_bases or self.start == len(self.records)

    # -- restarts --------------------------------------------------------------------------------------------

    @rule()
    def close_and_reopen(self) -> None:
        self.plog.close()
        self.log = self._open()
        assert self.plog.recovery_cuts == []
        self.checkpoint = self.hwm  # close checkpoints it
        self.durable = len(self.records)
        self.hwm = self._reopened_hwm(len(self.records))

    def _reopened_hwm(self, end: int) -> int:
        """Records past the checkpoint may never have been committed: a reopened log hides them."""
        return max(self.plog.log_start_offset, min(self.checkpoint, end))

    @rule(damage=st.sampled_from(["none", "garbage", "cut", "flip"]), data=st.data())
    def crash_and_reopen(self, damage: str, data: st.DataObject) -> None:
        plog = self.plog
        for segment in plog.segments:
            segment.close()
        plog.close_retired(force=True)
        self.log = None
        tail = sorted(self.directory.glob("*.log"))[-1]
        first_damaged, invalid_bytes_left = self._damage(tail, damage, data)

        self.log = self._open()

        end = self.plog.log_end_offset
        assert self.durable <= end <= len(self.records)
        assert end == len(self.records) or end in self.batch_bases
        assert end <= first_damaged
        if damage == "none" or first_damaged == len(self.records):
            assert end == len(self.records)
        assert bool(self.plog.recovery_cuts) == invalid_bytes_left
        del self.records[end:]
        del self.batch_bases[bisect.bisect_left(self.batch_bases, end):]
        self.durable = end
        self.hwm = self._reopened_hwm(end)

    def _damage(self, tail: Path, damage: str, data: st.DataObject) -> tuple[int, bool]:
        """Damage the unflushed part of `tail`.

        Returns the offset of the first damaged batch (the log end when garbage follows the last batch, or
        NOTHING_DAMAGED), and whether invalid bytes are left for recovery to cut (a cut exactly at a batch
        boundary leaves none).
        """
        raw = bytearray(tail.read_bytes())
        unflushed = [(pos, h) for pos, h in batches.scan_batches(raw) if h.base_offset >= self.durable]
        if damage == "garbage":
            raw += data.draw(st.binary(min_size=1, max_size=80), label="garbage")
            tail.write_bytes(bytes(raw))
            return len(self.records), True
        if damage in ("cut", "flip") and unflushed:
            first_pos = unflushed[0][0]
            if damage == "cut":
                position = len(raw) - data.draw(st.integers(1, len(raw) - first_pos), label="bytes_cut")
                del raw[position:]
            else:
                position = data.draw(st.sampled_from(
                    [pos + i for pos, h in unflushed for i in (*range(8, 12), *range(16, h.size))]), label="flip")
                raw[position] ^= data.draw(st.integers(1, 255), label="mask")
            tail.write_bytes(bytes(raw))
            boundary = damage == "cut" and position in {pos for pos, _ in unflushed}
            return [h.base_offset for pos, h in unflushed if pos <= position][-1], not boundary
        return NOTHING_DAMAGED, False

    # -- reads -----------------------------------------------------------------------------------------------

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, len(self.records)), label="offset")
        max_bytes = data.draw(st.integers(1, 1500), label="max_bytes")
        chunk = self.plog.read(offset, max_bytes)
        if offset >= self.hwm:
            assert chunk == b""
            return
        headers = list(batches.scan_batches(chunk))
        assert headers, "a read below the high watermark returns at least one batch"
        assert headers[0][1].base_offset <= offset < headers[0][1].next_offset
        assert len(chunk) <= max_bytes or len(headers) == 1
        expected_offset = headers[0][1].base_offset
        for pos, header in headers:
            assert header.base_offset == expected_offset, "batches of one read are contiguous"
            for record in batches.decode_records(chunk, pos):
                assert record.offset < self.hwm
                assert (record.key, record.value) == self.records[record.offset]
            expected_offset = header.next_offset

    @rule(data=st.data())
    def read_out_of_range(self, data: st.DataObject) -> None:
        below = list(range(max(0, self.start - 3), self.start))
        offset = data.draw(st.sampled_from([*below, len(self.records) + 1, len(self.records) + 50]), label="offset")
        with pytest.raises(OffsetOutOfRange):
            self.plog.read(offset, 100)

    @precondition(lambda self: self.log is not None)
    @invariant()
    def offsets_match_the_model(self) -> None:
        plog = self.plog
        assert plog.log_start_offset == self.start
        assert plog.log_end_offset == len(self.records)
        assert plog.high_watermark == self.hwm
        assert self.start <= self.hwm <= len(self.records)

    @rule()
    def read_everything(self) -> None:
        offset, seen = self.start, []
        while offset < self.hwm:
            chunk = self.plog.read(offset, 700)
            for pos, header in batches.iter_headers(chunk):
                seen.extend((r.key, r.value) for r in batches.decode_records(chunk, pos))
                offset = header.next_offset
        assert seen == self.records[self.start:self.hwm]


PartitionLogMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TestPartitionLog = PartitionLogMachine.TestCase
