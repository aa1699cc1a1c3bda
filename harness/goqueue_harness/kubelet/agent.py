"""The process-kubelet: registers a Node and runs the pods bound to it as processes.

Why it exists: without a container runtime no real kubelet runs here, yet
StatefulSets only progress when pods become Ready, and the operator must see
restarts, exit codes and readiness as a real cluster reports them. This daemon
(``python -m goqueue_harness kubelet``) watches all pods, binds pending ones to
its node (see ``scheduler``), runs one :class:`PodWorker` per bound pod, keeps the
per-pod DNS hosts files current (see ``dns``) and hosts the storage controller
(see ``goqueue_harness.storage``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from goqueue_harness.informer import Informer
from goqueue_harness.kubeapi import JSON, ApiError, ClientConfig, KubeClient, resource_path
from goqueue_harness.kubelet.addresses import AddressPool, network_octet_for
from goqueue_harness.kubelet.context import NodeContext
from goqueue_harness.kubelet.dns import cluster_records, find_nss_wrapper, hosts_file_text, write_if_changed
from goqueue_harness.kubelet.node import register_node, report_node
from goqueue_harness.kubelet.pod import PodWorker, inherited_env
from goqueue_harness.kubelet.scheduler import schedule, wants_scheduling
from goqueue_harness.storage import ResizeMode, StorageController

log = logging.getLogger(__name__)
NODE_NAME = "goqueue-local-node"
HEARTBEAT_S = 10.0
SHUTDOWN_GRACE_S = 5.0


class Kubelet:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._dns_dirty = asyncio.Event()
        self._schedule_wake = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.pods = Informer(ctx.client, resource_path("v1", "pods"), self._on_pod)
        self.services = Informer(ctx.client, resource_path("v1", "services"), self._on_service)
        ctx.request_dns_refresh = self._dns_dirty.set
        ctx.refresh_dns_now = self.refresh_hosts_files

    async def run(self) -> None:
        await register_node(self.ctx.client, self.ctx.node_name, self.ctx.host_ip)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.ctx.storage.run())
                tasks.create_task(self.pods.run())
                tasks.create_task(self.services.run())
                tasks.create_task(self._heartbeat())
                tasks.create_task(self._dns_loop())
                tasks.create_task(self._schedule_loop())
                tasks.create_task(self._announce_ready())
        finally:
            await self._shutdown()

    async def _announce_ready(self) -> None:
        """Tell ``start_kubelet`` (another process) that pods are being handled."""
        for informer in (self.pods, self.services, self.ctx.storage.pvs, self.ctx.storage.pvcs):
            await informer.synced.wait()
        (self.ctx.kubelet_dir / "ready").write_text("ready\n")

    # -- pods ------------------------------------------------------------------------------------------------
    async def _on_pod(self, kind: str, pod: JSON) -> None:
        self._dns_dirty.set()
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            worker = self.workers.pop(uid, None)
            if worker is not None:  # force-deleted (grace 0) before we finished: just stop the processes
                task = self._tasks.pop(uid)
                stopping = asyncio.create_task(self._stop_worker(worker, task))
                self._background.add(stopping)
                stopping.add_done_callback(self._background.discard)
            return
        if pod["spec"].get("nodeName") == self.ctx.node_name:
            worker = self.workers.get(uid)
            if worker is None:
                if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") and not pod["metadata"].get(
                        "deletionTimestamp"):
                    return  # finished before a kubelet restart: nothing to run
                worker = PodWorker(self.ctx, pod)
                self.workers[uid] = worker
                self._tasks[uid] = asyncio.create_task(self._run_worker(worker))
            worker.update(pod)
        elif wants_scheduling(pod):
            self._schedule_wake.set()

    async def _stop_worker(self, worker: PodWorker, task: asyncio.Task[None]) -> None:
        try:
            await worker.shutdown(min(SHUTDOWN_GRACE_S, 2.0), report=False)
        finally:
            task.cancel()

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        except ApiError as exc:
            log.warning("pod %s/%s: %s", worker.namespace, worker.name, exc)
        finally:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]
                self._tasks.pop(worker.uid, None)

    def _claim_phase(self, namespace: str, name: str) -> str | None:
        claim = self.ctx.storage.pvcs.objects.get(f"{namespace}/{name}")
        return None if claim is None else claim.get("status", {}).get("phase")

    async def _schedule_loop(self) -> None:
        await self.pods.synced.wait()
        await self.ctx.storage.pvcs.synced.wait()
        while True:
            self._schedule_wake.clear()
            pending = [p for p in list(self.pods.objects.values()) if wants_scheduling(p)]
            for pod in pending:
                await schedule(self.ctx.client, pod, self.ctx.node_name, self._claim_phase)
            # Unbound claims resolve without a pod event: poll while anything waits.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0 if pending else 30.0):  # not wait_for: it can swallow a cancel
                    await self._schedule_wake.wait()

    # -- DNS -------------------------------------------------------------------------------------------------
    async def _on_service(self, _kind: str, _svc: JSON) -> None:
        self._dns_dirty.set()

    async def _dns_loop(self) -> None:
        while True:
            await self._dns_dirty.wait()
            self._dns_dirty.clear()
            self.refresh_hosts_files()
            await asyncio.sleep(0.05)

    def refresh_hosts_files(self) -> None:
        pods = list(self.pods.objects.values())
        services = list(self.services.objects.values())
        by_namespace: dict[str, list[tuple[str, list[str]]]] = {}
        for worker in list(self.workers.values()):
            if worker.pod_ip is None:
                continue
            records = by_namespace.get(worker.namespace)
            if records is None:
                records = by_namespace[worker.namespace] = cluster_records(pods, services, worker.namespace)
            text = hosts_file_text(worker.pod, worker.pod_ip, records, self.ctx.host_ip)
            write_if_changed(self.ctx.hosts_file(worker.uid), text)

    # -- node ------------------------------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await report_node(self.ctx.client, self.ctx.node_name, self.ctx.host_ip, ready=True)
            except ApiError as exc:
                log.warning("node heartbeat failed: %s", exc)

    async def _shutdown(self) -> None:
        """Stop every pod's processes and say so in the API, so nothing looks Ready."""
        # Graceful first: cancelling a worker first would SIGKILL its processes.
        await asyncio.gather(*(w.shutdown(SHUTDOWN_GRACE_S, report=True) for w in list(self.workers.values())),
                             return_exceptions=True)
        for task in [*self._tasks.values(), *self._background]:
            task.cancel()
        with contextlib.suppress(ApiError, OSError):
            await report_node(self.ctx.client, self.ctx.node_name, self.ctx.host_ip, ready=False)


async def run_kubelet(
    kubeconfig: Path,
    kubelet_dir: Path,
    volumes_dir: Path,
    *,
    node_name: str = NODE_NAME,
    resize_mode: ResizeMode = "online",
    backoff_initial_s: float = 1.0,
    backoff_max_s: float = 30.0,
) -> None:
    """Run until SIGTERM/SIGINT; then stop all pod processes and return."""
    config = ClientConfig.from_kubeconfig(kubeconfig)
    port = int(config.server.rsplit(":", 1)[1])
    async with KubeClient(config) as client:
        ctx = NodeContext(
            client=client, node_name=node_name, kubelet_dir=kubelet_dir, apiserver_port=port,
            nss_wrapper=find_nss_wrapper(), base_env=inherited_env(),
            addresses=AddressPool(kubelet_dir / "next-pod-ip", network_octet_for(kubelet_dir)),
            storage=StorageController(client, volumes_dir, resize_mode=resize_mode),
            request_dns_refresh=lambda: None, refresh_dns_now=lambda: None,  # set by Kubelet
            backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s,
        )
        kubelet = Kubelet(ctx)
        main = asyncio.create_task(kubelet.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, main.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main
