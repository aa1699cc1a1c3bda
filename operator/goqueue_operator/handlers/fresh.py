"""The frame of every reconcile: one at a time per object, on a fresh read of it, API errors retried by kopf.

kopf hands a handler the body of the event that woke it, which may be stale by the time the per-object lock is
held (another reconcile of the same object ran meanwhile): the object is read again under the lock, and a deleted
or deleting object is left to its finalizer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import kopf

from goqueue_operator.context import OperatorContext, context_of
from goqueue_operator.kube import JSON, KubeError, NamespaceTerminating


async def reconcile_fresh(memo: kopf.Memo, kind: str, body: kopf.Body,
                          run: Callable[[OperatorContext, JSON], Awaitable[None]]) -> None:
    ctx = context_of(memo)
    meta = body["metadata"]
    async with ctx.locks.hold(meta["uid"]):
        with ctx.metrics.reconcile(kind):
            try:
                fresh = await ctx.kube.get(kind, meta["namespace"], meta["name"])
                if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                    return
                await run(ctx, fresh)
            except NamespaceTerminating:
                return  # the namespace and everything in it are going away
            except KubeError as exc:
                raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=ctx.settings.retry_delay_s) from exc
