"""List-then-watch caches of one resource kind, as client-go's informers do.

Why: the kubelet and the storage controller react to changes (a pod bound to
our node, a PVC that grew) and also need the current set of objects (all pods,
to write the DNS hosts files). An informer keeps that set in memory, resumes the
watch from the last resourceVersion, lists again when the server answers 410
Gone, and calls a handler for every change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import httpx

from goqueue_harness.kubeapi import JSON, Gone, KubeClient

log = logging.getLogger(__name__)

Handler = Callable[[str, JSON], Awaitable[None]]


def object_key(obj: JSON) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


class Informer:
    """Cache of the objects at ``path`` (optionally filtered by ``params``)."""

    def __init__(
        self, client: KubeClient, path: str, handler: Handler, params: Mapping[str, str] | None = None
    ) -> None:
        self._client = client
        self._path = path
        self._handler = handler
        self._params = dict(params or {})
        self.objects: dict[str, JSON] = {}
        self.synced = asyncio.Event()

    async def run(self) -> None:
        """List and watch forever; cancel the task to stop."""
        while True:
            try:
                version = await self._relist()
                self.synced.set()
                while True:
                    version = await self._watch(version)
            except Gone:
                log.debug("informer %s: watch expired, listing again", self._path)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                log.warning("informer %s: %s; retrying", self._path, exc)
                await asyncio.sleep(1.0)

    async def _relist(self) -> str:
        listed = await self._client.list(self._path, self._params)
        fresh = {object_key(o): o for o in listed.get("items", [])}
        for key, gone in list(self.objects.items()):
            if key not in fresh:
                del self.objects[key]
                await self._handler("DELETED", gone)
        for key, obj in fresh.items():
            kind = "MODIFIED" if key in self.objects else "ADDED"
            self.objects[key] = obj
            await self._handler(kind, obj)
        return str(listed["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str:
        async for kind, obj in self._client.watch(self._path, version, self._params):
            version = str(obj["metadata"].get("resourceVersion", version))
            if kind == "BOOKMARK":
                continue
            key = object_key(obj)
            if kind == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
            await self._handler(kind, obj)
        return version
