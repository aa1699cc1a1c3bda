"""LogWriter: group commit under each fsync policy, and every failure fails only what was not durable."""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from goqueue.config import FsyncPolicy
from goqueue.errors import DiskFull, InvalidRequest, NotLeader, OutOfOrderSequence, Overloaded, StorageError
from goqueue.storage import batch as batches
from goqueue.storage import segment as segment_module
from goqueue.storage import writer as writer_module
from goqueue.storage.log import AppendResult, PartitionLog
from goqueue.storage.writer import AppendJob, LogWriter

if TYPE_CHECKING:
    from conftest import LogKit

pytestmark = pytest.mark.unit

WAIT_S = 10.0


class Rounds:
    """The `on_round` callback: remembers every round and lets the test wait for finished jobs."""

    def __init__(self) -> None:
        self.rounds: list[tuple[list[AppendJob], set[PartitionLog]]] = []
        self._done: queue.Queue[AppendJob] = queue.Queue()

    def __call__(self, jobs: list[AppendJob], touched: set[PartitionLog]) -> None:
        self.rounds.append((list(jobs), set(touched)))
        for job in jobs:
            self._done.put(job)

    def wait(self, count: int) -> list[AppendJob]:
        deadline = time.monotonic() + WAIT_S
        finished = []
        while len(finished) < count:
            finished.append(self._done.get(timeout=max(0.0, deadline - time.monotonic())))
        return finished


class Syncs:
    """`observe_fsync`: counts fdatasyncs (thread-safe enough: only the writer thread calls it)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _seconds: float) -> None:
        self.count += 1


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.005)


@pytest.fixture
def writers() -> Iterator[Callable[..., tuple[LogWriter, Rounds, Syncs]]]:
    made: list[LogWriter] = []

    def make(policy: FsyncPolicy = FsyncPolicy.ALWAYS, **kwargs: Any) -> tuple[LogWriter, Rounds, Syncs]:
        rounds, syncs = Rounds(), Syncs()
        writer = LogWriter(policy, rounds, observe_fsync=syncs, **kwargs)
        made.append(writer)
        return writer, rounds, syncs

    yield make
    for writer in made:
        writer.stop()


def _job(plog: PartitionLog, value: bytes, n: int = 1) -> AppendJob:
    return AppendJob(plog, batches.build_batch([(None, value, [])] * n, 1_700_000_000_000), leader_epoch=0)


def _fail_for(fd_of: Callable[[], int], real: Callable[..., Any], error: OSError) -> Callable[..., Any]:
    """A stand-in for an os function that fails for one file descriptor and passes every other call through."""
    def fake(fd: int, *args: Any) -> Any:
        if fd == fd_of():
            raise error
        return real(fd, *args)
    return fake


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_jobs_complete_with_their_offsets_under_each_policy(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], policy: FsyncPolicy
) -> None:
    first, second = logs.open(logs.tmp_path / "a-0"), logs.open(logs.tmp_path / "b-0")
    writer, rounds, syncs = writers(policy, fsync_interval_s=0.01)
    jobs = [_job(first if i % 2 else second, b"v%d" % i, n=2) for i in range(20)]
    for job in jobs:
        writer.submit(job)  # queued before the thread starts: one round, one group commit
    writer.start()

    rounds.wait(len(jobs))

    for plog in (first, second):
        results = [j.outcome for j in jobs if j.log is plog]
        assert all(isinstance(r, AppendResult) for r in results)
        assert [(r.base_offset, r.last_offset) for r in results if isinstance(r, AppendResult)] == [
            (i, i + 1) for i in range(0, 20, 2)]
        assert plog.flushed_offset == plog.log_end_offset == 20
    assert len(rounds.rounds) == 1
    assert rounds.rounds[0][1] == {first, second}
    if policy is FsyncPolicy.ALWAYS:
        assert syncs.count == 2  # one fdatasync per log for the whole round
    elif policy is FsyncPolicy.INTERVAL:
        wait_until(lambda: syncs.count >= 2)
    else:
        writer.stop()
        assert syncs.count == 0


def test_a_full_queue_is_overloaded(logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]]) -> None:
    plog = logs.open()
    writer, rounds, _ = writers(queue_max=2)
    writer.submit(_job(plog, b"a"))
    writer.submit(_job(plog, b"b"))

    with pytest.raises(Overloaded):
        writer.submit(_job(plog, b"c"))

    assert writer.queue_depth == 2
    writer.start()
    assert len(rounds.wait(2)) == 2
    assert plog.log_end_offset == 2


@pytest.mark.parametrize("short_write", [False, True], ids=["enospc", "short-write"])
def test_a_full_disk_fails_the_job_leaves_no_partial_batch_and_later_appends_work(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
    short_write: bool,
) -> None:
    plog = logs.open()
    writer, rounds, _ = writers()
    writer.start()
    writer.submit(_job(plog, b"before"))
    rounds.wait(1)
    size = plog.active.path.stat().st_size
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if fd != plog.active._fd:
            return real_write(fd, data)
        if short_write:
            return real_write(fd, bytes(data)[:len(data) // 2])  # half fits; the next write would fail
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segment_module.os, "write", full_disk)
    writer.submit(_job(plog, b"x" * 500))
    [failed] = rounds.wait(1)
    monkeypatch.undo()

    assert isinstance(failed.outcome, DiskFull)
    assert plog.active.path.stat().st_size == plog.active.size == size
    assert plog.log_end_offset == 1
    writer.submit(_job(plog, b"after"))
    [later] = rounds.wait(1)
    assert isinstance(later.outcome, AppendResult)
    assert later.outcome.base_offset == 1
    plog.high_watermark = plog.flushed_offset
    assert logs.values(plog) == [b"before", b"after"]
    logs.crash(plog)
    assert logs.open().recovery_cuts == []


def test_a_failed_sync_among_several_fails_only_its_own_logs_jobs(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    healthy, failing = logs.open(logs.tmp_path / "ok-0"), logs.open(logs.tmp_path / "bad-0")
    writer, rounds, _ = writers()
    monkeypatch.setattr(segment_module.os, "fdatasync",
                        _fail_for(lambda: failing.active._fd, os.fdatasync, OSError(errno.EIO, "I/O error")))
    jobs = [_job(healthy, b"kept"), _job(failing, b"lost"), _job(healthy, b"kept too")]
    for job in jobs:
        writer.submit(job)  # queued before the thread starts: one round
    writer.start()
    rounds.wait(len(jobs))
    monkeypatch.undo()

    assert [type(job.outcome) for job in jobs] == [AppendResult, StorageError, AppendResult]
    assert (healthy.flushed_offset, failing.log_end_offset, failing.flushed_offset) == (2, 0, 0)


def test_a_failed_fdatasync_fails_the_job_and_truncates_the_log_back(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    plog = logs.open()
    writer, rounds, _ = writers()
    writer.start()
    writer.submit(_job(plog, b"durable"))
    rounds.wait(1)
    size = plog.active.size
    monkeypatch.setattr(segment_module.os, "fdatasync",
                        _fail_for(lambda: plog.active._fd, os.fdatasync, OSError(errno.EIO, "I/O error")))

    writer.submit(_job(plog, b"lost"))
    [failed] = rounds.wait(1)
    monkeypatch.undo()

    assert isinstance(failed.outcome, StorageError)
    assert (plog.log_end_offset, plog.flushed_offset, plog.active.path.stat().st_size) == (1, 1, size)
    writer.submit(_job(plog, b"retried"))
    [retried] = rounds.wait(1)
    assert isinstance(retried.outcome, AppendResult)
    assert retried.outcome.base_offset == 1
    plog.high_watermark = plog.flushed_offset
    assert logs.values(plog) == [b"durable", b"retried"]


def test_a_failed_fdatasync_keeps_the_acks_a_roll_already_made_durable(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    plog = logs.open(segment_bytes=300)
    writer, rounds, _ = writers()
    first_fd = plog.active._fd
    monkeypatch.setattr(segment_module.os, "fdatasync", _fail_for(
        lambda: -1 if plog.active._fd == first_fd else plog.active._fd, os.fdatasync, OSError(errno.EIO, "EIO")))
    sealed, unsynced = _job(plog, b"s" * 150), _job(plog, b"u" * 150)
    writer.submit(sealed)
    writer.submit(unsynced)  # does not fit: rolls, which seals `sealed`; the new segment's sync fails
    writer.start()

    rounds.wait(2)

    assert isinstance(sealed.outcome, AppendResult)
    assert isinstance(unsynced.outcome, StorageError)
    assert plog.log_end_offset == plog.flushed_offset == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dying_writer_fails_every_job_it_owned_and_refuses_new_ones(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    plog = logs.open()
    writer, rounds, _ = writers()
    eio = OSError(errno.EIO, "I/O error")
    monkeypatch.setattr(segment_module.os, "fdatasync", _fail_for(lambda: plog.active._fd, os.fdatasync, eio))
    monkeypatch.setattr(segment_module.os, "ftruncate", _fail_for(lambda: plog.active._fd, os.ftruncate, eio))
    jobs = [_job(plog, b"v%d" % i) for i in range(3)]
    for job in jobs:
        writer.submit(job)
    writer.start()

    finished = rounds.wait(3)

    assert {id(j) for j in finished} == {id(j) for j in jobs}
    assert all(isinstance(j.outcome, StorageError) for j in jobs)
    wait_until(lambda: writer.failure is not None)
    with pytest.raises(StorageError, match="died"):
        writer.submit(_job(plog, b"late"))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # it dies re-raising, by design
def test_a_dying_writer_also_fails_the_jobs_queued_behind_its_round(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    plog = logs.open()
    writer, rounds, _ = writers()
    eio = OSError(errno.EIO, "I/O error")
    syncing, release = threading.Event(), threading.Event()

    def stalled_then_failing_sync(fd: int) -> None:
        if fd != plog.active._fd:
            os.fdatasync(fd)
            return
        syncing.set()
        release.wait(WAIT_S)
        raise eio

    monkeypatch.setattr(segment_module.os, "fdatasync", stalled_then_failing_sync)
    monkeypatch.setattr(segment_module.os, "ftruncate", _fail_for(lambda: plog.active._fd, os.ftruncate, eio))
    writer.start()
    in_round = _job(plog, b"in-round")
    writer.submit(in_round)
    assert syncing.wait(WAIT_S), "the round never reached its fdatasync"
    queued = [_job(plog, b"queued-%d" % i) for i in range(2)]
    for job in queued:
        writer.submit(job)
    release.set()

    finished = rounds.wait(3)

    assert {id(j) for j in finished} == {id(j) for j in [in_round, *queued]}
    assert all(isinstance(j.outcome, StorageError) and "died" in str(j.outcome) for j in queued)


def test_the_writer_keeps_taking_jobs_after_an_idle_periodic_sync(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under `interval`, a quiet queue wakes the writer to sync what the last round left dirty; it must go back to
    waiting for jobs afterwards. The writer's clock is frozen so the sync can only come from that idle wake-up."""
    monkeypatch.setattr(writer_module, "time", SimpleNamespace(monotonic=lambda: 0.0, perf_counter=time.perf_counter))
    plog = logs.open()
    writer, rounds, syncs = writers(FsyncPolicy.INTERVAL, fsync_interval_s=0.01)
    writer.start()
    writer.submit(_job(plog, b"before"))
    rounds.wait(1)
    wait_until(lambda: syncs.count == 1)

    after = _job(plog, b"after")
    writer.submit(after)

    assert rounds.wait(1) == [after]
    assert isinstance(after.outcome, AppendResult)
    assert after.outcome.base_offset == 1


@pytest.mark.parametrize("policy", [FsyncPolicy.ALWAYS, FsyncPolicy.INTERVAL])
def test_a_stop_queued_behind_jobs_finishes_them_syncs_and_ends_the_thread(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], policy: FsyncPolicy,
) -> None:
    plog = logs.open()
    writer, rounds, syncs = writers(policy, fsync_interval_s=3600)
    jobs = [_job(plog, b"v%d" % i) for i in range(3)]
    for job in jobs:
        writer.submit(job)
    writer._put(None)  # what stop() queues, here taken in the same round as the jobs
    writer.start()

    writer._thread.join(WAIT_S)

    assert not writer._thread.is_alive()
    assert [j.outcome.base_offset for j in rounds.wait(3) if isinstance(j.outcome, AppendResult)] == [0, 1, 2]
    assert plog.flushed_offset == 3
    assert syncs.count == 1, "the round's fdatasync (always) or the final one at stop (interval)"


def test_a_refused_batch_fails_only_its_own_job(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]],
) -> None:
    plog = logs.open()
    writer, rounds, _ = writers()
    accepted = AppendJob(plog, batches.build_batch([(None, b"x", [])], 1, producer_id=5, base_sequence=0), 0)
    out_of_order = AppendJob(plog, batches.build_batch([(None, b"y", [])], 1, producer_id=5, base_sequence=7), 0)
    malformed = AppendJob(plog, bytearray(b"\x00" * 70), 0)
    for job in (accepted, out_of_order, malformed):
        writer.submit(job)
    writer.start()

    rounds.wait(3)

    assert isinstance(accepted.outcome, AppendResult)
    assert isinstance(out_of_order.outcome, OutOfOrderSequence)
    assert isinstance(malformed.outcome, InvalidRequest)
    assert plog.log_end_offset == 1


class FrozenClock:
    """The writer's `time`, moved only by the test (perf_counter stays real: it only times fdatasyncs)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.perf_counter = time.perf_counter

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize(("since_last_sync", "synced"), [(3599.0, 0), (3600.0, 1), (7200.0, 1)])
def test_under_interval_a_busy_writer_syncs_in_the_round_once_the_interval_has_passed(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
    since_last_sync: float, synced: int,
) -> None:
    """A queue that never empties never wakes the writer for its idle sync: the round itself must sync once
    fsync_interval_s has passed, or an acknowledged record could stay unsynced for as long as the load lasts."""
    clock = FrozenClock(5_000.0)
    monkeypatch.setattr(writer_module, "time", clock)
    plog = logs.open()
    writer, rounds, syncs = writers(FsyncPolicy.INTERVAL, fsync_interval_s=3600)  # no idle wake-up in this test
    clock.now += since_last_sync
    writer.submit(_job(plog, b"v"))
    writer.start()

    rounds.wait(1)  # on_round runs after the round's sync, in the same thread

    assert syncs.count == synced


def test_under_interval_the_idle_sync_covers_every_log_written_since_the_last_one(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "time", FrozenClock(0.0))
    first, second = logs.open(logs.tmp_path / "a-0"), logs.open(logs.tmp_path / "b-0")
    # the idle wake-up comes 1 s after the first round: long enough for the second round to come first (either
    # order needs two fdatasyncs; only this one tells whether the second round kept the first log dirty)
    writer, rounds, syncs = writers(FsyncPolicy.INTERVAL, fsync_interval_s=1.0)
    writer.submit(_job(first, b"a"))
    writer.start()
    rounds.wait(1)
    writer.submit(_job(second, b"b"))  # a second round, the first log still unsynced (its clock never moved)
    rounds.wait(1)

    wait_until(lambda: syncs.count >= 2)

    assert syncs.count == 2, "one fdatasync for each log the two rounds wrote"


def test_no_job_is_reported_before_an_fdatasync_covering_it_has_returned(
    logs: LogKit, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`always`: a job is reported (and so acknowledged) only after an fdatasync that began with its records
    written has returned — also the jobs handed over while a round syncs, which queue without waking the thread."""
    plog = logs.open()
    durable: list[int] = []  # the log end each returned fdatasync of this log covered
    syncing, release = threading.Event(), threading.Event()
    real_sync = os.fdatasync  # segment_module.os is the os module: patched below for every caller

    def watched_sync(fd: int) -> None:
        if fd != plog.active._fd:
            real_sync(fd)
            return
        covered = plog.log_end_offset  # what this sync makes durable: everything written before it began
        if not durable:
            syncing.set()
            release.wait(WAIT_S)
        real_sync(fd)
        durable.append(covered)

    monkeypatch.setattr(segment_module.os, "fdatasync", watched_sync)
    reported: list[tuple[AppendJob, int]] = []  # each job with the durable end when its round was reported
    done = threading.Semaphore(0)

    def on_round(jobs: list[AppendJob], _touched: set[PartitionLog]) -> None:
        reported.extend((job, max(durable, default=0)) for job in jobs)
        for _ in jobs:
            done.release()

    writer = LogWriter(FsyncPolicy.ALWAYS, on_round)
    writer.start()
    try:
        writer.submit(_job(plog, b"first"))
        assert syncing.wait(WAIT_S), "the first round never reached its fdatasync"
        later = [_job(plog, b"later-%d" % i, n=2) for i in range(3)]
        for job in later:
            writer.submit(job)  # the thread is inside fdatasync: queued, not woken
        assert reported == [], "a job was reported while the fdatasync of its round had not returned"
        release.set()
        for _ in range(4):
            assert done.acquire(timeout=WAIT_S)
    finally:
        release.set()
        writer.stop()

    assert len(reported) == 4
    for job, durable_end in reported:
        assert isinstance(job.outcome, AppendResult)
        assert job.outcome.last_offset < durable_end, f"{job.outcome} reported with only {durable_end} durable"
    assert len(durable) == 2  # the three later jobs shared one group commit


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_a_log_deleted_before_or_after_its_append_fails_that_job_as_moved_and_the_writer_lives_on(
    logs: LogKit, writers: Callable[..., tuple[LogWriter, Rounds, Syncs]], monkeypatch: pytest.MonkeyPatch,
    policy: FsyncPolicy,
) -> None:
    """A replica dropped (moved away, topic deleted) while its jobs are queued or being written: its files go from
    another thread. The writer died of IndexError before (and every later write with it)."""
    gone, racing, other = logs.open(logs.tmp_path / "gone-0"), logs.open(logs.tmp_path / "racing-0"), logs.open()
    writer, rounds, _ = writers(policy, fsync_interval_s=0.01)
    writer.start()
    gone.delete_files()
    writer.submit(_job(gone, b"queued before the delete"))
    [before] = rounds.wait(1)
    assert isinstance(before.outcome, NotLeader)

    real_append = racing.append

    def append_then_deleted(batch: bytearray, leader_epoch: int) -> AppendResult:
        result = real_append(batch, leader_epoch)
        racing.delete_files()  # the drop, between the write and its fdatasync
        return result
    monkeypatch.setattr(racing, "append", append_then_deleted)
    writer.submit(_job(racing, b"written, then deleted"))
    [after] = rounds.wait(1)
    if policy is FsyncPolicy.ALWAYS:
        assert isinstance(after.outcome, NotLeader)  # never acknowledged: it was not made durable
    writer.submit(_job(other, b"later"))
    [later] = rounds.wait(1)
    assert isinstance(later.outcome, AppendResult)
    assert writer.failure is None
