"""The only module that talks to the Kubernetes API: read, apply, delete, patch status, emit Events.

Why httpx and not the `kubernetes` package's generated client: the operator is asyncio (kopf), needs server-side
apply on arbitrary kinds (including optional CRDs) and plain dicts in and out; the `kubernetes` package is used
only to load credentials (kubeconfig or in-cluster, with its token refresh), which it does well.

Every created or changed child gets one Event on the GoQueueCluster from the one apply loop, `apply_all`.
Secrets are create-only (a password is generated once); optional kinds are skipped when their API is not served.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from goqueue_operator import API_VERSION

log = logging.getLogger("goqueue_operator.kube")
JSON = dict[str, Any]
FIELD_MANAGER = "goqueue-operator"
DISCOVERY_TTL_S = 60.0


class KubeError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NamespaceTerminating(KubeError):
    """403: the namespace is being deleted and accepts no new objects. Not a failure: the work is moot."""


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


RESOURCES: dict[str, Resource] = {r.kind: r for r in (
    Resource("v1", "ConfigMap", "configmaps"),
    Resource("v1", "Secret", "secrets"),
    Resource("v1", "Service", "services"),
    Resource("v1", "Pod", "pods"),
    Resource("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    Resource("v1", "Event", "events"),
    Resource("v1", "Namespace", "namespaces", namespaced=False),
    Resource("apps/v1", "StatefulSet", "statefulsets"),
    Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Resource("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    Resource("storage.k8s.io/v1", "StorageClass", "storageclasses", namespaced=False),
    Resource("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    Resource("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
    Resource("cert-manager.io/v1", "Certificate", "certificates"),
    Resource(API_VERSION, "GoQueueCluster", "goqueueclusters"),
    Resource(API_VERSION, "GoQueueTopic", "goqueuetopics"),
    Resource(API_VERSION, "GoQueueConsumerGroup", "goqueueconsumergroups"),
    Resource(API_VERSION, "GoQueueUser", "goqueueusers"),
    Resource(API_VERSION, "GoQueueRebalance", "goqueuerebalances"),
    Resource("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False),
)}


def resource(kind: str) -> Resource:
    return RESOURCES[kind]


@dataclass(frozen=True)
class ObjectRef:
    """What an Event is about (the involvedObject)."""

    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectRef:
        meta = body["metadata"]
        return cls(kind=body["kind"], namespace=meta.get("namespace", ""), name=meta["name"], uid=meta.get("uid", ""))


@dataclass(frozen=True)
class AppliedChild:
    kind: str
    name: str
    action: Literal["created", "updated", "unchanged", "skipped"]
    body: JSON | None


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Did an apply change the object? Objects with a generation (StatefulSet, PDB) change it only for spec
    changes; comparing resourceVersions there would count a status update by their controller as ours."""
    old, new = before["metadata"], after["metadata"]
    if "generation" in new:
        return bool(old.get("generation") != new.get("generation") or old.get("labels") != new.get("labels")
                    or old.get("annotations") != new.get("annotations"))
    return bool(old.get("resourceVersion") != new.get("resourceVersion"))


class Kube:
    def __init__(self, http: httpx.AsyncClient, authorization: Callable[[], str | None], *,
                 instance: str = "goqueue-operator") -> None:
        self._http = http
        self._authorization = authorization
        self._instance = instance
        self._served: dict[str, tuple[float, bool]] = {}

    @classmethod
    def connect(cls, kubeconfig: str | None, *, timeout_s: float = 30.0, instance: str = "goqueue-operator") -> Kube:
        """Credentials from `kubeconfig` (a path), else the pod's service account."""
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config

        cfg = k8s_client.Configuration()
        if kubeconfig:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else (
            ssl.create_default_context())
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        if not cfg.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        http = httpx.AsyncClient(base_url=str(cfg.host), verify=context, timeout=timeout_s)

        def authorization() -> str | None:
            """The bearer token, if any (refreshed by the loader's hook: exec plugins, projected tokens)."""
            value: str | None = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
            return value

        return cls(http, authorization, instance=instance)

    async def close(self) -> None:
        await self._http.aclose()

    # -- plumbing -------------------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None,
                       content_type: str = "application/json") -> JSON:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if (auth := self._authorization()) is not None:
            headers["Authorization"] = auth
        try:
            response = await self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise KubeError(0, "Unreachable", f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                status = response.json()
                reason, message = str(status.get("reason", "")), str(status.get("message", response.text))
            except ValueError:
                reason, message = "", response.text[:300]
            if response.status_code == 403 and "because it is being terminated" in message:
                raise NamespaceTerminating(response.status_code, reason, message)
            raise KubeError(response.status_code, reason, message)
        result: JSON = response.json() if response.content else {}
        return result

    # -- reads ----------------------------------------------------------------------------------------------------

    async def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        try:
            return await self._request("GET", resource(kind).path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list_objects(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[JSON]:
        params = {"labelSelector": label_selector} if label_selector else None
        found = await self._request("GET", resource(kind).path(namespace), params=params)
        items: list[JSON] = found.get("items", [])
        return items

    async def serves(self, api_version: str) -> bool:
        """Whether the API server serves a group version (optional CRDs); cached for a minute."""
        now = time.monotonic()
        cached = self._served.get(api_version)
        if cached is not None and now - cached[0] < DISCOVERY_TTL_S:
            return cached[1]
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            await self._request("GET", path)
            served = True
        except KubeError as exc:
            if exc.status not in (403, 404):
                raise
            served = False
        self._served[api_version] = (now, served)
        return served

    # -- writes ---------------------------------------------------------------------------------------------------

    async def apply(self, obj: Mapping[str, Any]) -> JSON:
        """Server-side apply as the operator's field manager; conflicts are forced (we own what we declare)."""
        meta = obj["metadata"]
        path = resource(obj["kind"]).path(meta.get("namespace"), meta["name"])
        return await self._request("PATCH", path, body=dict(obj), content_type="application/apply-patch+yaml",
                                   params={"fieldManager": FIELD_MANAGER, "force": "true"})

    async def create(self, obj: Mapping[str, Any]) -> JSON | None:
        """Create; None when it already exists (left untouched)."""
        meta = obj["metadata"]
        try:
            return await self._request("POST", resource(obj["kind"]).path(meta.get("namespace")), body=dict(obj),
                                       params={"fieldManager": FIELD_MANAGER})
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    async def delete(self, kind: str, namespace: str, name: str, *, uid: str | None = None,
                     propagation: Literal["Orphan", "Background", "Foreground"] | None = None) -> bool:
        """Delete; False when already gone. `uid` is a precondition: a same-named successor is never hit."""
        options: JSON = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            options["preconditions"] = {"uid": uid}
        if propagation:
            options["propagationPolicy"] = propagation
        try:
            await self._request("DELETE", resource(kind).path(namespace, name), body=options)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def patch(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any],
                    subresource: str | None = None) -> JSON:
        """JSON merge patch."""
        return await self._request("PATCH", resource(kind).path(namespace, name, subresource), body=dict(patch),
                                   content_type="application/merge-patch+json")

    async def patch_status(self, kind: str, namespace: str, name: str, status: Mapping[str, Any]) -> JSON | None:
        """Merge-patch the status subresource; None when the object is gone."""
        try:
            return await self.patch(kind, namespace, name, {"status": dict(status)}, subresource="status")
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    # -- Events ---------------------------------------------------------------------------------------------------

    async def emit_event(self, about: ObjectRef, reason: str, message: str, *, warning: bool = False) -> None:
        """One Kubernetes Event. Best effort: an Event that cannot be written (namespace terminating) is logged."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{about.name}.{secrets.token_hex(8)}", "namespace": about.namespace},
            "involvedObject": {"apiVersion": API_VERSION if about.kind.startswith("GoQueue") else "v1",
                               "kind": about.kind, "namespace": about.namespace, "name": about.name,
                               "uid": about.uid},
            "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
            "source": {"component": FIELD_MANAGER}, "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        log.info("event", extra={"kind": about.kind, "object": f"{about.namespace}/{about.name}",
                                 "reason": reason, "event_message": message})
        try:
            await self._request("POST", resource("Event").path(about.namespace), body=event)
        except NamespaceTerminating:
            log.debug("event.not_written", extra={"reason": reason, "why": "namespace terminating"})
        except KubeError as exc:
            log.warning("event.not_written", extra={"reason": reason, "status": exc.status, "error": exc.message})

    # -- the apply loop -------------------------------------------------------------------------------------------

    async def apply_all(self, children: Iterable[Mapping[str, Any]], about: ObjectRef, *,
                        create_only_kinds: frozenset[str] = frozenset(),
                        optional_apis: frozenset[str] = frozenset()) -> list[AppliedChild]:
        """Apply children in order; one Event per created or changed child."""
        applied: list[AppliedChild] = []
        for obj in children:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if obj["apiVersion"] in optional_apis and not await self.serves(obj["apiVersion"]):
                applied.append(AppliedChild(kind, name, "skipped", None))
                continue
            if kind in create_only_kinds:
                created = await self.create(obj)
                applied.append(AppliedChild(kind, name, "created" if created else "unchanged", created))
            else:
                before = await self.get(kind, obj["metadata"]["namespace"], name)
                after = await self.apply(obj)
                if before is None:
                    action: Literal["created", "updated", "unchanged"] = "created"
                elif _changed(before, after):
                    action = "updated"
                else:
                    action = "unchanged"
                applied.append(AppliedChild(kind, name, action, after))
            if applied[-1].action in ("created", "updated"):
                await self.emit_event(about, applied[-1].action.capitalize(), f"{kind} {name} {applied[-1].action}")
        return applied
