"""One container as a local process: start, probe, restart with back-off, stop.

Why a runner per container: a container's life is a small state machine
(waiting → running → terminated → back-off → running ...) whose every state must
show in ``containerStatuses`` (restartCount, lastState.terminated.exitCode,
ready), because the operator and the StatefulSet controller read exactly that.
The process leads its own process group, so SIGTERM/SIGKILL reach anything it
spawned; its pid is also written to a pid file so ``down`` can stop leftovers
even if the kubelet itself was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from goqueue_harness import processes
from goqueue_harness.kubeapi import JSON
from goqueue_harness.kubelet.probes import ProbeTarget, ProbeTiming, resolve_port, run_probe

log = logging.getLogger(__name__)


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LaunchError(RuntimeError):
    """The container cannot be started yet; ``reason`` becomes its waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to exec the process, computed fresh for each start."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_file: Path
    probe_target: ProbeTarget


@dataclass
class Backoff:
    """Crash-loop delays: ``initial_s`` doubling to ``max_s``; reset after a long run.

    Shorter than the real kubelet's 10 s → 300 s so tests of restarts stay quick.
    """

    initial_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 60.0
    crashes: int = 0

    def next_delay(self, ran_for_s: float) -> float:
        if ran_for_s >= self.reset_after_s:
            self.crashes = 0
        self.crashes += 1
        return float(min(self.max_s, self.initial_s * 2 ** (self.crashes - 1)))


@dataclass
class ContainerRecord:
    """Observed state of one container, rendered into its ``ContainerStatus``."""

    name: str
    image: str
    restart_count: int = 0
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JSON = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    container_id: str = ""

    def status(self) -> JSON:
        result: JSON = {
            "name": self.name, "image": self.image, "imageID": "", "ready": self.ready,
            "started": self.started, "restartCount": self.restart_count,
            "state": self.state, "lastState": self.last_state,
        }
        if self.container_id:
            result["containerID"] = self.container_id
        return result

    @property
    def terminated(self) -> JSON | None:
        value: JSON | None = self.state.get("terminated")
        return value


def exit_code_of(returncode: int) -> int:
    """Shell convention, as container runtimes report it: killed by signal N → 128+N."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerRunner:
    """Runs one container until stopped (or until it ends and must not restart)."""

    def __init__(
        self,
        container: JSON,
        *,
        restart: str,  # "Always", "OnFailure" or "Never"
        prepare: Callable[[int], Awaitable[LaunchSpec]],
        on_change: Callable[[], None],
        pid_file: Path,
        grace_s: Callable[[], float],
        backoff: Backoff,
    ) -> None:
        self.container = container
        self.record = ContainerRecord(container["name"], container.get("image", ""))
        self._restart = restart
        self._prepare = prepare
        self._on_change = on_change
        self._pid_file = pid_file
        self._grace_s = grace_s
        self._backoff = backoff
        self._proc: asyncio.subprocess.Process | None = None
        self._target: ProbeTarget | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self.started = asyncio.Event()  # set when the startup probe (if any) first passes

    # -- public ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.record.terminated is not None

    async def run(self) -> None:
        while not self._stopping:
            try:
                spec = await self._prepare(self.record.restart_count)
            except LaunchError as exc:
                self._set(state={"waiting": {"reason": exc.reason, "message": str(exc)}})
                await self._pause(self._backoff.next_delay(0.0))
                continue
            started = time.monotonic()
            code = await self._run_once(spec)
            if not self._should_restart(code):
                return
            delay = self._backoff.next_delay(time.monotonic() - started)
            self.record.restart_count += 1
            self._set(state={"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:.0f}s restarting failed container={self.record.name}"}})
            await self._pause(delay)

    async def stop(self, grace_s: float) -> None:
        """Run the preStop hook, SIGTERM, and SIGKILL after ``grace_s``; never restart again."""
        self._stopping = True
        self._wake.set()
        proc = self._proc
        if proc is None or proc.returncode is not None:
            if self.record.terminated is None:
                self._set(state={"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now_rfc3339()}})
            return
        deadline = time.monotonic() + grace_s
        await self._pre_stop(grace_s)
        await self._terminate(proc, max(0.0, deadline - time.monotonic()))

    # -- one process -----------------------------------------------------------------------------
    async def _run_once(self, spec: LaunchSpec) -> int:
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_file.open("ab") as log_fh:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *spec.argv, env=spec.env, cwd=spec.cwd, stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_fh, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                )
            except OSError as exc:
                finished = now_rfc3339()
                terminated = {"exitCode": 128, "reason": "StartError", "message": str(exc),
                              "startedAt": finished, "finishedAt": finished}
                self._set(state={"terminated": terminated})
                return 128
        self._proc = proc
        self._target = spec.probe_target
        ticks = processes.process_start_ticks(proc.pid)
        self._pid_file.parent.mkdir(parents=True, exist_ok=True)
        self._pid_file.write_text(f"{proc.pid} {ticks if ticks is not None else -1}\n")
        started_at = now_rfc3339()
        has_startup = "startupProbe" in self.container
        self._set(state={"running": {"startedAt": started_at}}, ready=False, started=not has_startup,
                  container_id=f"process://{proc.pid}")
        probing = asyncio.create_task(self._probe(spec.probe_target, proc))
        try:
            returncode = await proc.wait()
        finally:
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
            self._kill_leftovers(proc.pid)
            self._pid_file.unlink(missing_ok=True)
        code = exit_code_of(returncode)
        terminated = {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "startedAt": started_at, "finishedAt": now_rfc3339(), "containerID": f"process://{proc.pid}",
        }
        if self._stopping or not self._should_restart(code):
            self._set(state={"terminated": terminated}, ready=False)
        else:
            self.record.last_state = {"terminated": terminated}
            self._set(ready=False)
        return code

    def _should_restart(self, code: int) -> bool:
        if self._stopping:
            return False
        return self._restart == "Always" or (self._restart == "OnFailure" and code != 0)

    async def _terminate(self, proc: asyncio.subprocess.Process, grace_s: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace_s):  # not wait_for: on 3.11 it can swallow a cancellation
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    @staticmethod
    def _kill_leftovers(pgid: int) -> None:
        """A container's death takes its whole process tree with it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    async def _pre_stop(self, grace_s: float) -> None:
        hook = (self.container.get("lifecycle") or {}).get("preStop")
        target = self._target
        if not hook or target is None:
            return
        try:
            if "sleep" in hook:
                await asyncio.sleep(min(grace_s, float(hook["sleep"]["seconds"])))
            elif "exec" in hook:
                async with asyncio.timeout(grace_s):
                    await run_probe({"exec": hook["exec"], "timeoutSeconds": grace_s}, target)
            elif "httpGet" in hook:
                spec = hook["httpGet"]
                port = resolve_port(spec["port"], self.container)
                async with httpx.AsyncClient(timeout=grace_s) as client:
                    await client.get(f"http://{spec.get('host') or target.pod_ip}:{port}{spec.get('path', '/')}")
        except (TimeoutError, httpx.HTTPError, OSError, ValueError) as exc:
            log.info("preStop hook of %s failed: %s", self.record.name, exc)

    # -- probes ------------------------------------------------------------------------------------
    async def _probe(self, target: ProbeTarget, proc: asyncio.subprocess.Process) -> None:
        startup = self.container.get("startupProbe")
        if startup is not None:
            if not await self._until(startup, target, want=True):
                log.info("startup probe of %s failed; killing it", self.record.name)
                await self._terminate(proc, self._grace_s())
                return
            self._set(started=True)
        readiness = self.container.get("readinessProbe")
        liveness = self.container.get("livenessProbe")
        async with asyncio.TaskGroup() as group:
            if readiness is None:
                self._set(ready=True)
            else:
                group.create_task(self._readiness_loop(readiness, target))
            if liveness is not None:
                group.create_task(self._liveness_loop(liveness, target, proc))

    async def _until(self, probe: JSON, target: ProbeTarget, *, want: bool) -> bool:
        """Probe until ``want`` holds ``threshold`` times in a row; False if the opposite does first."""
        timing = ProbeTiming.of(probe)
        await asyncio.sleep(timing.initial_delay_s)
        good = bad = 0
        while True:
            ok = await run_probe(probe, target)
            good, bad = (good + 1, 0) if ok else (0, bad + 1)
            if want and good >= timing.success_threshold:
                return True
            if bad >= timing.failure_threshold:
                return False
            await asyncio.sleep(timing.period_s)

    async def _readiness_loop(self, probe: JSON, target: ProbeTarget) -> None:
        timing = ProbeTiming.of(probe)
        await asyncio.sleep(timing.initial_delay_s)
        good = bad = 0
        while True:
            ok = await run_probe(probe, target)
            good, bad = (good + 1, 0) if ok else (0, bad + 1)
            if good >= timing.success_threshold and not self.record.ready:
                self._set(ready=True)
            elif bad >= timing.failure_threshold and self.record.ready:
                self._set(ready=False)
            await asyncio.sleep(timing.period_s)

    async def _liveness_loop(self, probe: JSON, target: ProbeTarget, proc: asyncio.subprocess.Process) -> None:
        if not await self._until(probe, target, want=False):
            log.info("liveness probe of %s failed; restarting it", self.record.name)
            await self._terminate(proc, self._grace_s())

    # -- helpers ---------------------------------------------------------------------------------
    def _set(self, *, state: JSON | None = None, ready: bool | None = None, started: bool | None = None,
             container_id: str | None = None) -> None:
        if state is not None:
            self.record.state = state
        if ready is not None:
            self.record.ready = ready
        if started is not None:
            self.record.started = started
            if started:
                self.started.set()
        if container_id is not None:
            self.record.container_id = container_id
        self._on_change()

    async def _pause(self, delay_s: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._wake.wait()
