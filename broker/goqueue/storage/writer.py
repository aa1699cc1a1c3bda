"""The writer thread: every append of every partition goes through it, with group commit.

Why one thread: offsets must be assigned in write order and fdatasync must never run on the event loop. The thread
takes everything queued (up to `MAX_JOBS_PER_ROUND`), writes each batch to its partition's active segment, then
fdatasyncs each touched log once — many producers' batches, one fdatasync per partition per round — and only then
reports the round. While one round syncs, the next round's batches queue up, so batching grows with load by itself.

Policies (`storage.fsync`): `always` syncs before acknowledging; `interval` acknowledges after the write and syncs
every `fsync_interval_s`; `never` leaves syncing to the OS.

`PartitionLog.flushed_offset` is what the round may acknowledge: under `always` the durable end of the log; under
`interval` and `never` the written end (the policy accepts losing it to a power failure).

Failures: a write that hits ENOSPC is cut back by the segment and the job fails with `DiskFull`; other write
errors fail the job with `StorageError`, a malformed batch with `InvalidRequest`. Under `always`, a failed
fdatasync truncates the log back to its last durable offset (the page cache can no longer be trusted, as
PostgreSQL learned) and fails every job of that log in the round whose records were not already durable. Nothing
unsynced is ever reported as written under `always`. Under `interval` a failed periodic sync is logged and cuts
nothing: those records were acknowledged and may have been read, so removing them would renumber the log.
If the thread itself dies (say, the cut-back after a failed sync fails too), it fails every job it held or that
was queued, and `submit` refuses new ones: a restart and recovery are needed.

Completion: `on_round` is called from this thread once per round with every (job, result or error); the broker
hands that to its event loop in one `call_soon_threadsafe`.

Hand-off: `submit` appends to a deque (no lock: deque appends and pops are atomic) and wakes the thread only when
it sleeps for want of work; while a round writes or syncs, appends queue up and cost no wake-up at all. The thread
takes everything queued without a lock per job. (It was a `queue.Queue`: a mutex and a condition notify per append
on the event loop, and one per job again on this thread.)
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from goqueue.config import FsyncPolicy
from goqueue.errors import DiskFull, GoQueueError, InvalidRequest, NotLeader, Overloaded, StorageError
from goqueue.storage.batch import InvalidBatch
from goqueue.storage.log import AppendResult, LogDeleted, PartitionLog

log = logging.getLogger(__name__)

MAX_JOBS_PER_ROUND = 4096


@dataclass
class AppendJob:
    log: PartitionLog
    batch: bytearray
    leader_epoch: int
    context: Any = None  # opaque to the writer: the caller's future, partition id …
    outcome: AppendResult | GoQueueError | None = field(default=None, init=False)


RoundCallback = Callable[[list[AppendJob], set[PartitionLog]], None]


class LogWriter:
    def __init__(
        self,
        policy: FsyncPolicy,
        on_round: RoundCallback,
        *,
        queue_max: int = 4096,
        fsync_interval_s: float = 0.05,
        observe_fsync: Callable[[float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.on_round = on_round
        self.fsync_interval_s = fsync_interval_s
        self.observe_fsync = observe_fsync or (lambda _s: None)
        self._queue_max = queue_max
        self._jobs: deque[AppendJob | None] = deque()  # None: stop once the jobs before it are done
        self._wake = threading.Event()
        self._sleeping = False  # the thread waits (or is about to) on `_wake`: a submit must set it
        self._thread = threading.Thread(target=self._run, name="goqueue-writer", daemon=True)
        self._dirty: set[PartitionLog] = set()
        self._last_sync = time.monotonic()
        self._round_jobs: list[AppendJob] = []
        self.failure: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: AppendJob) -> None:
        """Queue a job; raises Overloaded when the bounded queue is full (the caller answers 503, retriable)."""
        if self.failure is not None:
            raise StorageError(f"the writer thread died: {self.failure!r}")
        if len(self._jobs) >= self._queue_max:
            raise Overloaded("the write queue is full; retry with back-off")
        self._put(job)

    def _put(self, job: AppendJob | None) -> None:
        # Append first, then look whether the thread sleeps: it sets `_sleeping` before its last look at the deque,
        # so either it sees this job or this sees it asleep (and the event, cleared before, wakes it).
        self._jobs.append(job)
        if self._sleeping:
            self._wake.set()

    def stop(self) -> None:
        """Finish queued jobs, sync, and stop the thread."""
        if self._thread.is_alive():
            self._put(None)
            self._thread.join()

    @property
    def queue_depth(self) -> int:
        return len(self._jobs)

    def _wait_for_jobs(self, timeout: float | None) -> bool:
        """Sleep until a job is queued (True) or `timeout` passes with none (False)."""
        while not self._jobs:
            self._wake.clear()
            self._sleeping = True
            if self._jobs:  # queued between the look above and `_sleeping`: its submit did not wake us
                self._sleeping = False
                break
            woken = self._wake.wait(timeout)
            self._sleeping = False
            if not woken and not self._jobs:
                return False
        return True

    # -- thread ----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                timeout = self.fsync_interval_s if (self._dirty and self.policy is FsyncPolicy.INTERVAL) else None
                if not self._wait_for_jobs(timeout):
                    self._sync_dirty()
                    continue
                jobs: list[AppendJob] = []
                stopping = False
                queued = self._jobs
                while queued and len(jobs) < MAX_JOBS_PER_ROUND:
                    job = queued.popleft()
                    if job is None:
                        stopping = True
                        break
                    jobs.append(job)
                if jobs:
                    self._round(jobs)
                if stopping:
                    self._sync_dirty()
                    return
        except BaseException as exc:
            self.failure = exc
            log.exception("writer.died")
            self._fail_owned_jobs(exc)
            raise

    def _fail_owned_jobs(self, exc: BaseException) -> None:
        """A dying writer fails the round it was in and everything queued, so no caller waits forever."""
        error = StorageError(f"the writer thread died: {exc!r}")
        jobs = self._round_jobs
        while self._jobs:
            job = self._jobs.popleft()
            if job is not None:
                jobs.append(job)
        for job in jobs:
            job.outcome = error
        if jobs:
            self.on_round(jobs, set())

    def _round(self, jobs: list[AppendJob]) -> None:
        self._round_jobs = jobs
        touched = {job.log for job in jobs if _append(job)}
        if self.policy is FsyncPolicy.ALWAYS:
            for failed_log in self._sync(touched):
                for job in jobs:
                    outcome = job.outcome
                    if (job.log is failed_log and isinstance(outcome, AppendResult)
                            and outcome.last_offset >= failed_log.flushed_offset):
                        job.outcome = (StorageError("fdatasync failed; the write was rolled back")
                                       if failed_log.segments else _moved_away(failed_log))
        else:
            self._dirty |= touched
            if self.policy is FsyncPolicy.INTERVAL and time.monotonic() - self._last_sync >= self.fsync_interval_s:
                self._sync_dirty()
            for partition_log in touched:
                segments = partition_log.segments  # empty once a drop deleted the log meanwhile
                if segments:
                    partition_log.flushed_offset = segments[-1].next_offset
        self._round_jobs = []
        self.on_round(jobs, touched)

    def _sync(self, logs: set[PartitionLog]) -> list[PartitionLog]:
        """fdatasync each log; returns the logs whose sync failed (under `always`, already truncated back)."""
        failed = []
        for partition_log in logs:
            started = time.perf_counter()
            try:
                partition_log.flush()
            except LogDeleted:
                failed.append(partition_log)  # dropped (moved away, topic deleted) after the write: not durable
                continue
            except OSError as exc:
                log.error("writer.fsync_failed", extra={"log": partition_log.directory.name, "error": str(exc)})
                if self.policy is FsyncPolicy.ALWAYS:
                    partition_log.truncate_to(partition_log.flushed_offset)
                failed.append(partition_log)
            self.observe_fsync(time.perf_counter() - started)
        return failed

    def _sync_dirty(self) -> None:
        if self.policy is not FsyncPolicy.NEVER:
            self._sync(self._dirty)
        self._dirty = set()
        self._last_sync = time.monotonic()


def _append(job: AppendJob) -> bool:
    """Write one job's batch; its outcome is the result or the error. True when the log was written."""
    try:
        job.outcome = job.log.append(job.batch, job.leader_epoch)
        return True
    except GoQueueError as exc:
        job.outcome = exc
    except LogDeleted:
        job.outcome = _moved_away(job.log)
    except InvalidBatch as exc:
        job.outcome = InvalidRequest(f"invalid record batch: {exc}")
    except OSError as exc:
        job.outcome = _translate(exc)
    return False


def _moved_away(partition_log: PartitionLog) -> GoQueueError:
    """A write whose log was deleted (its replica moved away, its topic deleted) before it was durable: nothing was
    acknowledged, and the client finds the partition's new leader, or that it is gone, on its retry."""
    return NotLeader(f"{partition_log.directory.name} is no longer on this broker (moved away or deleted); "
                     "nothing was written")


def _translate(exc: OSError) -> GoQueueError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull("the volume is full; the write was refused and nothing was acknowledged")
    return StorageError(f"write failed: {exc.strerror or exc}")
