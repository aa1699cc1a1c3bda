"""One pod's life on the process-kubelet: volumes, IP, containers, status, deletion.

Why a worker per pod (keyed by UID, as the real kubelet's pod workers are): a
pod's steps are sequential (address and volumes, then init containers, then
containers, then termination) while many pods progress at once. Deletion
follows the API contract: the API server marks the pod with a
``deletionTimestamp``; the worker runs preStop hooks, sends SIGTERM, sends
SIGKILL after the grace period, reports the final status, and then removes the
object with ``gracePeriodSeconds=0`` and a UID precondition, so a StatefulSet
pod recreated under the same name is never deleted by mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path

from goqueue_harness.kubeapi import JSON, ApiError, KubeClient, NotFound, resource_path
from goqueue_harness.kubelet.addresses import is_pod_ip
from goqueue_harness.kubelet.container import Backoff, ContainerRunner, LaunchError, LaunchSpec, now_rfc3339
from goqueue_harness.kubelet.context import NodeContext
from goqueue_harness.kubelet.dns import container_dns_env, pod_hostname
from goqueue_harness.kubelet.env import EnvError, PodFacts, container_env, expand
from goqueue_harness.kubelet.probes import ProbeTarget
from goqueue_harness.kubelet.serviceaccount import in_cluster_env
from goqueue_harness.kubelet.status import KUBELET_CONDITIONS, PodObservation, pod_status
from goqueue_harness.kubelet.volumes import (
    PathRewriter,
    VolumeNotReady,
    VolumeSources,
    container_mounts,
    materialise,
    rewrite_text_files,
    write_service_account_tokens,
)

log = logging.getLogger(__name__)
DEFAULT_GRACE_S = 30.0
TOKEN_RENEW_FRACTION = 0.8  # the kubelet renews a projected token once 80 % of its lifetime has passed
TOKEN_RETRY_S = 10.0


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: JSON) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.pod_ip: str | None = None
        self.start_time = pod.get("status", {}).get("startTime") or now_rfc3339()
        self._folders: dict[str, Path] = {}
        self._init: list[ContainerRunner] = []
        self._main: list[ContainerRunner] = []
        self._init_done = not pod["spec"].get("initContainers")
        self._terminating = False
        self._delete_requested = asyncio.Event()
        self._dirty = asyncio.Event()
        self._last_status: JSON | None = None
        self._runner_tasks: list[asyncio.Task[None]] = []

    # -- driven by the kubelet ---------------------------------------------------------------------
    def update(self, pod: JSON) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self._delete_requested.set()

    async def run(self) -> None:
        """Run the pod until the API asks to delete it; then terminate and remove it."""
        status_task = asyncio.create_task(self._status_loop())
        lifecycle = asyncio.create_task(self._lifecycle())
        tokens = asyncio.create_task(self._renew_tokens())
        try:
            await self._delete_requested.wait()
            grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
            await self._terminate(float(grace) if grace is not None else self._spec_grace())
            lifecycle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lifecycle
            await self._push_status()
            await self.ctx.client.delete(
                resource_path("v1", "pods", self.namespace, self.name),
                {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                 "preconditions": {"uid": self.uid}})
            self._cleanup()
        finally:
            lifecycle.cancel()
            status_task.cancel()
            tokens.cancel()

    async def shutdown(self, grace_s: float, *, report: bool) -> None:
        """Stop the processes without deleting the pod (kubelet exit, or pod force-deleted)."""
        await self._terminate(grace_s)
        if report:
            with contextlib.suppress(ApiError, OSError):
                await self._push_status()

    # -- lifecycle -----------------------------------------------------------------------------------
    def _spec_grace(self) -> float:
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))

    async def _lifecycle(self) -> None:
        reported = self.pod.get("status", {}).get("podIP")
        self.pod_ip = (self.ctx.addresses.adopt(self.uid, reported) if is_pod_ip(reported)
                       else self.ctx.addresses.allocate(self.uid))
        self._main = [self._runner(c, self._restart_policy()) for c in self.pod["spec"]["containers"]]
        self._init = [self._runner(c, self._init_restart(c)) for c in self.pod["spec"].get("initContainers") or []]
        self._mark()
        await self._prepare_volumes()
        self.ctx.refresh_dns_now()
        for claim in self._claim_names():
            await self.ctx.storage.finish_offline_resize(self.namespace, claim)
        for runner in self._init:
            task = asyncio.create_task(runner.run())
            self._runner_tasks.append(task)
            if runner.container.get("restartPolicy") == "Always":  # a native sidecar: wait until started
                started = asyncio.create_task(runner.started.wait())
                await asyncio.wait([started, task], return_when=asyncio.FIRST_COMPLETED)
                started.cancel()
                continue
            await task
            if (runner.record.terminated or {}).get("exitCode") != 0:
                return  # restartPolicy Never and the init container failed: the pod failed
        self._init_done = True
        self._mark()
        self._runner_tasks += [asyncio.create_task(r.run()) for r in self._main]
        await asyncio.gather(*self._runner_tasks, return_exceptions=True)

    async def _terminate(self, grace_s: float) -> None:
        self._terminating = True
        self._mark()
        runners = [*self._main, *self._init]
        await asyncio.gather(*(r.stop(grace_s) for r in runners))
        for task in self._runner_tasks:
            task.cancel()
        self._mark()

    def _cleanup(self) -> None:
        self.ctx.addresses.release(self.uid)
        shutil.rmtree(self.ctx.pod_dir(self.uid), ignore_errors=True)  # emptyDirs, config copies, hosts
        self.ctx.request_dns_refresh()

    def _restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def _init_restart(self, container: JSON) -> str:
        if container.get("restartPolicy") == "Always":
            return "Always"
        return "Never" if self._restart_policy() == "Never" else "OnFailure"

    def _runner(self, container: JSON, restart: str) -> ContainerRunner:
        async def prepare(restart_count: int) -> LaunchSpec:
            return await self._launch_spec(container, restart_count)

        return ContainerRunner(
            container, restart=restart, prepare=prepare, on_change=self._mark,
            pid_file=self.ctx.container_pid_file(self.uid, container["name"]),
            grace_s=self._spec_grace,
            backoff=Backoff(self.ctx.backoff_initial_s, self.ctx.backoff_max_s),
        )

    # -- volumes and launch ------------------------------------------------------------------------------
    def _claim_names(self) -> list[str]:
        return [v["persistentVolumeClaim"]["claimName"] for v in self.pod["spec"].get("volumes") or []
                if "persistentVolumeClaim" in v]

    async def _prepare_volumes(self) -> None:
        while True:
            try:
                facts = await self._facts()
                sources = VolumeSources(facts, await self._claim_folders(), await self._token())
                self._folders = materialise(self.pod, self.ctx.pod_dir(self.uid), sources)
                return
            except (VolumeNotReady, EnvError) as exc:
                for runner in (*self._init, *self._main):
                    runner.record.state = {"waiting": {"reason": "ContainerCreating", "message": str(exc)}}
                self._mark()
                await asyncio.sleep(1.0)

    async def _claim_folders(self) -> dict[str, Path]:
        folders: dict[str, Path] = {}
        client = self.ctx.client
        for claim_name in self._claim_names():
            claim = await client.get(resource_path("v1", "persistentvolumeclaims", self.namespace, claim_name))
            if claim is None or claim.get("status", {}).get("phase") != "Bound":
                continue
            pv = await client.get(resource_path("v1", "persistentvolumes", name=claim["spec"]["volumeName"]))
            source = (pv or {}).get("spec", {})
            path = (source.get("hostPath") or source.get("local") or {}).get("path")
            if path:
                folders[claim_name] = Path(path)
        return folders

    async def _token(self) -> str | None:
        """A bound service-account token for projected volumes (TokenRequest API)."""
        wanted = any("serviceAccountToken" in s for v in self.pod["spec"].get("volumes") or []
                     for s in (v.get("projected") or {}).get("sources") or [])
        if not wanted:
            return None
        sa = self.pod["spec"].get("serviceAccountName", "default")
        try:
            answer = await self.ctx.client.create(
                resource_path("v1", "serviceaccounts", self.namespace, sa, "token"),
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
                    "expirationSeconds": self.ctx.token_ttl_s,
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}}})
        except ApiError as exc:
            raise VolumeNotReady(f"service account token: {exc}") from exc
        token: str = answer["status"]["token"]
        return token

    async def _renew_tokens(self) -> None:
        """Keep the projected token valid for as long as the pod lives (a `make up` demo outlives a day)."""
        delay = self.ctx.token_ttl_s * TOKEN_RENEW_FRACTION
        while True:
            await asyncio.sleep(delay)
            delay = self.ctx.token_ttl_s * TOKEN_RENEW_FRACTION
            try:
                token = await self._token()
            except VolumeNotReady as exc:
                log.warning("pod %s/%s: renewing its service-account token failed: %s", self.namespace, self.name, exc)
                delay = TOKEN_RETRY_S
                continue
            if token is None:
                return  # the pod has no projected token
            write_service_account_tokens(self.pod, self._folders, token)

    async def _facts(self) -> PodFacts:
        cms, secrets = _referenced_objects(self.pod)
        client: KubeClient = self.ctx.client
        config_maps = {n: o for n in cms if (o := await client.get(
            resource_path("v1", "configmaps", self.namespace, n))) is not None}
        secret_objs = {n: o for n in secrets if (o := await client.get(
            resource_path("v1", "secrets", self.namespace, n))) is not None}
        return PodFacts(self.pod, self.pod_ip or "", self.ctx.host_ip, self.ctx.node_name, config_maps, secret_objs)

    async def _launch_spec(self, container: JSON, restart_count: int) -> LaunchSpec:
        try:
            env = container_env(await self._facts(), container)
        except EnvError as exc:
            raise LaunchError("CreateContainerConfigError", str(exc)) from exc
        mounts = container_mounts(container, self._folders)
        rewrite = PathRewriter(mounts)
        rewrite_text_files(rewrite, self._folders, self.pod)
        command = container.get("command") or self._image_command(container)
        argv = [rewrite(expand(a, env)) for a in [*command, *(container.get("args") or [])]]
        pod_env = {k: rewrite(v) for k, v in env.items()}
        # Added after the rewriting: it is already a host path.
        pod_env.update(in_cluster_env(
            mounts, env, server=f"https://{self.ctx.host_ip}:{self.ctx.apiserver_port}", namespace=self.namespace,
            service_account=self.pod["spec"].get("serviceAccountName", "default")))
        full_env = self._process_env(pod_env)
        executable = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=full_env.get("PATH"))
        if executable is None:
            raise LaunchError("RunContainerError",
                              f'exec: "{argv[0]}": executable file not found in $PATH={full_env.get("PATH")}')
        cwd = Path(rewrite(container["workingDir"])) if container.get("workingDir") else (
            self.ctx.pod_dir(self.uid) / "cwd" / container["name"])
        cwd.mkdir(parents=True, exist_ok=True)
        log_file = self.ctx.log_dir(self.namespace, self.name, self.uid) / container["name"] / f"{restart_count}.log"
        target = ProbeTarget(self.pod_ip or "", container, full_env, cwd, rewrite)
        return LaunchSpec([executable, *argv[1:]], full_env, cwd, log_file, target)

    def _image_command(self, container: JSON) -> list[str]:
        image = str(container.get("image", ""))
        repo = image.rsplit("/", 1)[-1].split("@", maxsplit=1)[0].split(":", maxsplit=1)[0]
        if repo in self.ctx.image_commands:
            return list(self.ctx.image_commands[repo])
        raise LaunchError("CreateContainerError",
                          f"container {container['name']} has no command and image {image!r} has no known "
                          "entrypoint; the process-kubelet ignores images, so set `command`")

    def _process_env(self, pod_env: dict[str, str]) -> dict[str, str]:
        port = str(self.ctx.apiserver_port)
        hostname = pod_hostname(self.pod)
        env = dict(self.ctx.base_env)
        env.update({
            "HOSTNAME": hostname,
            "KUBERNETES_SERVICE_HOST": self.ctx.host_ip, "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
        })
        env.update(pod_env)
        env.update(container_dns_env(self.ctx.hosts_file(self.uid), hostname, self.ctx.nss_wrapper, env))
        return env

    # -- status -----------------------------------------------------------------------------------------------
    def _mark(self) -> None:
        self._dirty.set()

    async def _status_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._push_status()
            except ApiError as exc:
                log.info("status of %s/%s not written: %s", self.namespace, self.name, exc)
            await asyncio.sleep(0.05)  # coalesce bursts of changes into one write

    async def _push_status(self) -> None:
        if self.pod_ip is None and not self._main:
            return
        observed = PodObservation(
            pod_ip=self.pod_ip, host_ip=self.ctx.host_ip, start_time=self.start_time, init_done=self._init_done,
            init=[r.record for r in self._init], main=[r.record for r in self._main],
            restart_policy=self._restart_policy(), terminating=self._terminating,
        )
        ours = [c for c in (self._last_status or {}).get("conditions", []) if c["type"] in KUBELET_CONDITIONS]
        theirs = [c for c in self.pod.get("status", {}).get("conditions") or [] if c["type"] not in KUBELET_CONDITIONS]
        view = {**self.pod, "status": {"conditions": ours + theirs}}
        status = pod_status(view, observed, now_rfc3339())
        if status == self._last_status:
            return
        try:
            # metadata.uid makes the patch fail rather than touch a same-named successor pod.
            await self.ctx.client.patch(resource_path("v1", "pods", self.namespace, self.name, "status"),
                                        {"metadata": {"uid": self.uid}, "status": status})
        except NotFound:
            return
        self._last_status = status


def _referenced_objects(pod: JSON) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets a pod's env and volumes refer to."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    for volume in pod["spec"].get("volumes") or []:
        sources = [volume, *((volume.get("projected") or {}).get("sources") or [])]
        config_maps.update(s["configMap"]["name"] for s in sources if "configMap" in s)
        secrets.update(s["secret"].get("secretName") or s["secret"].get("name") for s in sources if "secret" in s)
    for container in [*pod["spec"]["containers"], *(pod["spec"].get("initContainers") or [])]:
        refs = [*(container.get("envFrom") or []), *((v.get("valueFrom") or {}) for v in container.get("env") or [])]
        config_maps.update(r[k]["name"] for r in refs for k in ("configMapRef", "configMapKeyRef") if k in r)
        secrets.update(r[k]["name"] for r in refs for k in ("secretRef", "secretKeyRef") if k in r)
    return config_maps, secrets


def inherited_env() -> dict[str, str]:
    """The slice of the kubelet's environment a container sees (the "image's" env).

    PATH so ``goqueue-broker`` resolves in the current Python environment;
    locale and HOME so programs behave; PYTHONPATH/VIRTUAL_ENV for source checkouts.
    """
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SSL_CERT_FILE",
            "SSL_CERT_DIR", "TZ", "USER")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"  # logs reach the log file as they happen
    return env
