"""Volumes for a cluster without a storage backend: a StorageClass, a PV pool, resizes.

Why: StatefulSet brokers claim PersistentVolumes; nothing here provisions them.
The control plane gets a default StorageClass ``standard`` (``no-provisioner``,
``Immediate`` binding so claims bind without a scheduler, and
``allowVolumeExpansion`` so the API server accepts bigger requests) plus a pool
of pre-created hostPath PVs, each a folder under ``<state>/volumes/``.

What a cloud's CSI driver would do, :class:`StorageController` does (it runs
inside the process-kubelet daemon):

- *right-size*: a pool PV bound to a claim gets capacity = the claim's request,
  so ``status.capacity`` reads like a dynamically provisioned volume;
- *big claims*: a pending claim larger than the pool size gets its own PV;
- *resize*: a bound claim whose request grew gets the new PV capacity, then
  either ``status.capacity`` at once (``online``) or the
  ``FileSystemResizePending`` condition until a pod using it starts
  (``offline``, what the kubelet does for filesystems that grow on mount;
  per claim with the annotation ``goqueue.dev/harness-resize-mode: offline``);
- *reclaim*: a Released pool PV is deleted with its folder (the ``Delete``
  policy users expect) and the pool refilled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Literal

from goqueue_harness.informer import Informer
from goqueue_harness.kubeapi import JSON, ApiError, Conflict, KubeClient, resource_path
from goqueue_harness.quantity import parse_quantity

log = logging.getLogger(__name__)

STORAGE_CLASS = "standard"
POOL_LABEL = "goqueue.dev/harness-pool"
SIZED_ANNOTATION = "goqueue.dev/harness-sized"
# Per-claim override of the daemon's resize mode ("online" | "offline"); claim templates can carry it.
RESIZE_MODE_ANNOTATION = "goqueue.dev/harness-resize-mode"
PV_PATH = resource_path("v1", "persistentvolumes")
PVC_PATH = resource_path("v1", "persistentvolumeclaims")
ResizeMode = Literal["online", "offline"]


def storage_class(name: str = STORAGE_CLASS, *, default: bool = True) -> JSON:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": name,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true" if default else "false"},
        },
        "provisioner": "kubernetes.io/no-provisioner",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }


def pool_volume(name: str, folder: Path, capacity: str, claim: JSON | None = None,
                class_name: str = STORAGE_CLASS) -> JSON:
    """A hostPath PV of the pool; ``claim`` pre-binds it (for oversized claims)."""
    spec: JSON = {
        "capacity": {"storage": capacity},
        "accessModes": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"],
        "persistentVolumeReclaimPolicy": "Retain",  # the controller deletes Released PVs itself
        "storageClassName": class_name,
        "volumeMode": "Filesystem",
        "hostPath": {"path": str(folder), "type": "DirectoryOrCreate"},
    }
    if claim is not None:
        meta = claim["metadata"]
        spec["claimRef"] = {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {POOL_LABEL: "true"}},
        "spec": spec,
    }


class StorageController:
    """Keeps the PV pool full and plays the volume driver for resizes.

    On the local control plane it serves the default class ``standard``. On kind (goqueue_harness.kind_storage) it
    serves a second, non-default class whose folders are created here in ``volumes_dir`` and seen by the node at
    ``node_volumes_dir`` (a bind mount); folders are world-writable there, as kind's local-path helper makes them,
    since broker pods run as a non-root user.
    """

    def __init__(
        self,
        client: KubeClient,
        volumes_dir: Path,
        *,
        pool_size: int = 20,
        pool_capacity: str = "200Gi",
        resize_mode: ResizeMode = "online",
        class_name: str = STORAGE_CLASS,
        default_class: bool = True,
        node_volumes_dir: Path | None = None,
    ) -> None:
        self._client = client
        self._volumes_dir = volumes_dir
        self._class_name = class_name
        self._default_class = default_class
        self._node_volumes_dir = node_volumes_dir or volumes_dir
        self._pool_size = pool_size
        self._pool_capacity = pool_capacity
        self._resize_mode = resize_mode
        self._wake = asyncio.Event()
        self.pvs = Informer(client, PV_PATH, self._changed, {"labelSelector": f"{POOL_LABEL}=true"})
        self.pvcs = Informer(client, PVC_PATH, self._changed)

    async def bootstrap(self) -> None:
        """Create the StorageClass and fill the pool once (used by ``up`` before any daemon runs)."""
        with contextlib.suppress(Conflict):
            await self._client.create(resource_path("storage.k8s.io/v1", "storageclasses"),
                                      storage_class(self._class_name, default=self._default_class))
        listed = await self._client.list(PV_PATH, {"labelSelector": f"{POOL_LABEL}=true"})
        free_phases = (None, "Pending", "Available")
        available = [pv for pv in listed["items"] if pv.get("status", {}).get("phase") in free_phases]
        for _ in range(self._pool_size - len(available)):
            await self._create_pv(self._pool_capacity)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.pvs.run())
            tasks.create_task(self.pvcs.run())
            tasks.create_task(self._reconcile_loop())

    async def _changed(self, _kind: str, _obj: JSON) -> None:
        self._wake.set()

    async def _reconcile_loop(self) -> None:
        await self.pvs.synced.wait()
        await self.pvcs.synced.wait()
        while True:
            self._wake.clear()
            try:
                await self.reconcile()
            except ApiError as exc:  # a conflict or a vanished object: the next event retries
                log.info("storage reconcile: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):  # not wait_for: on 3.11 it can swallow a cancellation
                    await self._wake.wait()

    async def reconcile(self) -> None:
        pvs = dict(self.pvs.objects)
        claims = dict(self.pvcs.objects)
        available = 0
        for pv in pvs.values():
            phase = pv.get("status", {}).get("phase")
            if phase in {"Released", "Failed"}:
                await self._delete_pv(pv)
            elif phase == "Available" and not pv["spec"].get("claimRef"):
                available += 1
        for _ in range(self._pool_size - available):
            await self._create_pv(self._pool_capacity)
        pool_bytes = parse_quantity(self._pool_capacity)
        for claim in claims.values():
            phase = claim.get("status", {}).get("phase")
            if phase == "Pending" and _request(claim) > pool_bytes and self._wants_pool(claim):
                await self._create_pv(claim["spec"]["resources"]["requests"]["storage"], claim)
            elif phase == "Bound":
                bound = pvs.get("/" + str(claim["spec"].get("volumeName", "")))
                if bound is not None:
                    await self._sync_bound(claim, bound)

    async def _sync_bound(self, claim: JSON, pv: JSON) -> None:
        # Decide on the informers' copies, but act only on a fresh read: a cache that has not yet seen
        # our own last patch (the PV's sized mark, the claim's pending condition) would otherwise skip
        # an offline resize's FileSystemResizePending or size a volume twice.
        if _bound_action(claim, pv, self._resize_mode) is None:
            return
        meta = claim["metadata"]
        fresh_claim = await self._client.get(
            resource_path("v1", "persistentvolumeclaims", meta["namespace"], meta["name"]))
        fresh_pv = await self._client.get(f"{PV_PATH}/{pv['metadata']['name']}")
        if fresh_claim is None or fresh_pv is None:
            return
        action = _bound_action(fresh_claim, fresh_pv, self._resize_mode)
        request = fresh_claim["spec"]["resources"]["requests"]["storage"]
        if action == "size":  # first sight of this binding: like a provisioner that made it to measure
            await self._set_pv_capacity(fresh_pv, request, sized=True)
            await self._set_claim_status(fresh_claim, request, pending=False)
        elif action in ("grow-online", "grow-offline"):
            await self._set_pv_capacity(fresh_pv, request, sized=True)
            await self._set_claim_status(fresh_claim, request, pending=action == "grow-offline")
        elif action == "report":  # the PV grew but the claim's status never said so (a crash between)
            await self._set_claim_status(fresh_claim, fresh_pv["spec"]["capacity"]["storage"], pending=False)

    async def finish_offline_resize(self, namespace: str, claim_name: str) -> None:
        """A pod using the claim started: its filesystem "grew on mount"; finish the resize."""
        # A fresh read, not the informer: the pending condition may be newer than its cache.
        claim = await self._client.get(resource_path("v1", "persistentvolumeclaims", namespace, claim_name))
        if claim is None or not _resize_pending(claim):
            return
        pv = await self._client.get(f"{PV_PATH}/{claim['spec'].get('volumeName', '')}")
        if pv is not None:
            await self._set_claim_status(claim, pv["spec"]["capacity"]["storage"], pending=False)

    async def _create_pv(self, capacity: str, claim: JSON | None = None) -> None:
        name = f"goqueue-pv-{secrets.token_hex(4)}"
        folder = self._volumes_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        if self._node_volumes_dir != self._volumes_dir:
            folder.chmod(0o777)  # pods in the node run as their own (non-root) users
        await self._client.create(PV_PATH, pool_volume(name, self._node_volumes_dir / name, capacity, claim,
                                                       self._class_name))

    async def _delete_pv(self, pv: JSON) -> None:
        name = pv["metadata"]["name"]
        await self._client.delete(f"{PV_PATH}/{name}")
        folder = Path(pv["spec"].get("hostPath", {}).get("path", ""))
        if folder.parent == self._node_volumes_dir:
            shutil.rmtree(self._volumes_dir / folder.name, ignore_errors=True)
        log.info("pool volume %s released and deleted", name)

    def _wants_pool(self, claim: JSON) -> bool:
        classes = (None, self._class_name) if self._default_class else (self._class_name,)
        return claim["spec"].get("storageClassName") in classes and not claim["spec"].get("volumeName")

    async def _set_pv_capacity(self, pv: JSON, capacity: str, *, sized: bool) -> None:
        patch: JSON = {"spec": {"capacity": {"storage": capacity}}}
        if sized:
            patch["metadata"] = {"annotations": {SIZED_ANNOTATION: "true"}}
        await self._client.patch(f"{PV_PATH}/{pv['metadata']['name']}", patch)

    async def _set_claim_status(self, claim: JSON, capacity: str, *, pending: bool) -> None:
        meta = claim["metadata"]
        path = resource_path("v1", "persistentvolumeclaims", meta["namespace"], meta["name"], "status")
        request = claim["spec"]["resources"]["requests"]["storage"]
        conditions = [c for c in claim.get("status", {}).get("conditions", []) if c.get("type") not in
                      ("Resizing", "FileSystemResizePending")]
        status: JSON = {"conditions": conditions or None, "allocatedResources": {"storage": request}}
        if pending:
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            conditions.append({
                "type": "FileSystemResizePending", "status": "True", "lastTransitionTime": now,
                "message": "Waiting for user to (re-)start a pod to finish file system resize of volume on node.",
            })
            status["conditions"] = conditions
            status["allocatedResourceStatuses"] = {"storage": "NodeResizePending"}
        else:
            status["capacity"] = {"storage": capacity}
            status["allocatedResourceStatuses"] = None
        await self._client.patch(path, {"status": status})


def _bound_action(claim: JSON, pv: JSON, default_mode: ResizeMode) -> str | None:
    """What a bound claim and its PV need: size, grow-online, grow-offline, report, or nothing."""
    request = claim["spec"]["resources"]["requests"]["storage"]
    pv_capacity = pv["spec"]["capacity"]["storage"]
    capacity = claim.get("status", {}).get("capacity", {}).get("storage", "0")
    if SIZED_ANNOTATION not in pv["metadata"].get("annotations", {}):
        return "size"
    if parse_quantity(request) > parse_quantity(pv_capacity):
        mode = claim["metadata"].get("annotations", {}).get(RESIZE_MODE_ANNOTATION, default_mode)
        return "grow-offline" if mode == "offline" else "grow-online"
    if parse_quantity(capacity) < parse_quantity(pv_capacity) and not _resize_pending(claim):
        return "report"
    return None


def _request(claim: JSON) -> Decimal:
    return parse_quantity(claim["spec"].get("resources", {}).get("requests", {}).get("storage", "0"))


def _resize_pending(claim: JSON) -> bool:
    return any(c.get("type") == "FileSystemResizePending" and c.get("status") == "True"
               for c in claim.get("status", {}).get("conditions", []))
