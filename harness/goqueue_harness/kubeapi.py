"""A small asyncio Kubernetes REST client for the harness's own controllers.

Why not the ``kubernetes`` package: the process-kubelet and the storage
controller are asyncio programs that need streaming watches and merge patches on
subresources (``pods/status``, ``pods/binding``); ``httpx`` does that in a page
of code without threads. Tests use whichever client they like against the
kubeconfig the control plane writes.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(RuntimeError):
    """A non-2xx answer from the API server, with its ``Status`` body."""

    def __init__(self, status_code: int, body: str) -> None:
        self.status_code = status_code
        try:
            parsed: JSON = json.loads(body)
        except ValueError:
            parsed = {"message": body}
        self.reason = str(parsed.get("reason", ""))
        super().__init__(f"HTTP {status_code} {self.reason}: {parsed.get('message', body)}")


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""


class Conflict(ApiError):
    """409: already exists, or a stale resourceVersion / uid precondition."""


class Gone(ApiError):
    """410: a watch's resourceVersion is too old; list again."""


@dataclass(frozen=True)
class ClientConfig:
    """The API server URL and the file paths of the admin client's TLS material."""

    server: str
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ClientConfig:
        """Read a kubeconfig whose TLS material is in files (as the harness writes them) or inline (``*-data``,
        as kind writes them: decoded into private files beside the kubeconfig)."""
        doc = yaml.safe_load(path.read_text())
        current = doc["current-context"]
        context = next(c["context"] for c in doc["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])

        def material(section: dict[str, str], key: str) -> Path:
            if key in section:
                return Path(section[key])
            target = path.parent / f"{path.name}.{key}"
            target.touch(mode=0o600)
            target.write_bytes(base64.b64decode(section[f"{key}-data"]))
            return target

        return cls(
            server=cluster["server"],
            ca_file=material(cluster, "certificate-authority"),
            cert_file=material(user, "client-certificate"),
            key_file=material(user, "client-key"),
        )

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/api/v1/namespaces/ns/pods/name/status`` and friends."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace is not None:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name is not None:
        parts.append(name)
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


class KubeClient:
    """Async JSON calls against one API server."""

    def __init__(self, config: ClientConfig, *, timeout_s: float = 30.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=config.server, verify=config.ssl_context(), timeout=httpx.Timeout(timeout_s)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: JSON | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        response = await self._http.request(
            method, path, params=params,
            content=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        if response.status_code >= 300:
            raise _error(response.status_code, response.text)
        result: JSON = response.json() if response.content else {}
        return result

    async def get(self, path: str) -> JSON | None:
        try:
            return await self.request("GET", path)
        except NotFound:
            return None

    async def list(self, path: str, params: Mapping[str, str] | None = None) -> JSON:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: JSON, *, content_type: str = MERGE_PATCH) -> JSON:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str, body: JSON | None = None) -> JSON | None:
        try:
            return await self.request("DELETE", path, body=body)
        except NotFound:
            return None

    async def watch(
        self, path: str, resource_version: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[tuple[str, JSON]]:
        """Yield ``(type, object)`` events from ``resource_version`` until the server closes.

        Raises :class:`Gone` when the version expired, so the caller lists again.
        """
        query = dict(params or {})
        query.update(watch="true", resourceVersion=resource_version, allowWatchBookmarks="true",
                     timeoutSeconds="300")
        async with self._http.stream("GET", path, params=query, timeout=httpx.Timeout(30.0, read=330.0)) as response:
            if response.status_code >= 300:
                raise _error(response.status_code, (await response.aread()).decode())
            async for line in response.aiter_lines():
                if not line:
                    continue
                event = json.loads(line)
                obj: JSON = event["object"]
                if event["type"] == "ERROR":
                    raise _error(int(obj.get("code", 500)), json.dumps(obj))
                yield event["type"], obj


def _error(status_code: int, body: str) -> ApiError:
    cls = {404: NotFound, 409: Conflict, 410: Gone}.get(status_code, ApiError)
    return cls(status_code, body)
