"""Fixtures for the storage unit tests: an injected clock and partition logs on real temp files.

`logs` opens `PartitionLog`s that are closed at teardown (warnings are errors: no file may leak), simulates a
process crash (`crash`: descriptors closed with no seal and no checkpoint, so what was written stays in the files
exactly as a SIGKILL leaves it), and reads a log back as plain records for comparison with a list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from goqueue.storage import batch as batches
from goqueue.storage.batch import Record
from goqueue.storage.log import AppendResult, LogConfig, PartitionLog

START_S = 1_700_000_000.0


class FakeClock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self, now_s: float = START_S) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    @property
    def ms(self) -> int:
        return int(self.now_s * 1000)


class LogKit:
    def __init__(self, tmp_path: Path, clock: FakeClock) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.directory = tmp_path / "orders-0"
        self._open: list[PartitionLog] = []

    def config(self, **overrides: Any) -> LogConfig:
        return LogConfig(**{"segment_bytes": 1024, "index_interval_bytes": 128, **overrides})

    def open(self, directory: Path | None = None, **config: Any) -> PartitionLog:
        partition_log = PartitionLog.open(directory or self.directory, self.config(**config), self.clock)
        self._open.append(partition_log)
        return partition_log

    def close(self, partition_log: PartitionLog) -> None:
        self._open.remove(partition_log)
        partition_log.close()

    def crash(self, partition_log: PartitionLog) -> None:
        """What SIGKILL leaves: written bytes stay, nothing is sealed or checkpointed."""
        self._open.remove(partition_log)
        for segment in partition_log.segments:
            segment.close()
        partition_log.close_retired(force=True)

    def close_all(self) -> None:
        for partition_log in list(self._open):
            self.close(partition_log)

    def append(
        self,
        partition_log: PartitionLog,
        values: Sequence[bytes | None],
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        **producer: int,
    ) -> AppendResult:
        batch = batches.build_batch([(key, value, []) for value in values],
                                    self.clock.ms if timestamp_ms is None else timestamp_ms, **producer)
        return partition_log.append(batch, leader_epoch=3)

    @staticmethod
    def publish(partition_log: PartitionLog) -> None:
        """What the single-node owner does after a round: fdatasync, then move the high watermark."""
        partition_log.flush()
        partition_log.high_watermark = partition_log.flushed_offset

    @staticmethod
    def records(partition_log: PartitionLog, start: int | None = None, max_bytes: int = 1 << 20) -> list[Record]:
        """Every record from `start` (default: the log start) up to the high watermark, read as a consumer."""
        offset = partition_log.log_start_offset if start is None else start
        found: list[Record] = []
        while offset < partition_log.high_watermark:
            data = partition_log.read(offset, max_bytes)
            assert data, f"no data at {offset} below the high watermark {partition_log.high_watermark}"
            for pos, header in batches.iter_headers(data):
                found.extend(r for r in batches.decode_records(data, pos) if r.offset >= offset)
                offset = header.next_offset
        return found

    @classmethod
    def values(cls, partition_log: PartitionLog, start: int | None = None) -> list[bytes | None]:
        return [r.value for r in cls.records(partition_log, start)]

    def files(self, directory: Path | None = None) -> dict[str, bytes]:
        """name → content of every file in the log directory (to prove nothing changed)."""
        return {p.name: p.read_bytes() for p in sorted((directory or self.directory).iterdir())}

    def last_log_file(self, directory: Path | None = None) -> Path:
        return sorted((directory or self.directory).glob("*.log"))[-1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def logs(tmp_path: Path, clock: FakeClock) -> Iterator[LogKit]:
    kit = LogKit(tmp_path, clock)
    yield kit
    kit.close_all()
