"""The client certificate of an HTTPS connection, handed to the routes as the ASGI TLS extension.

uvicorn puts nothing of the TLS session into the request scope. The listener's protocol (`connection_limits`) wraps
the app of each TLS connection whose client presented a certificate the server context verified (against
`tls.clientCaFile`), so every request on it carries `scope["extensions"]["tls"]["client_cert_name"]` — the
certificate's subject common name, which the gatekeeper authenticates as `User:<CN>` (docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


def verified_common_name(transport: asyncio.BaseTransport) -> str | None:
    """The subject CN of the peer's verified certificate, or None (no TLS, no certificate, or no CN)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    certificate: dict[str, Any] | None = ssl_object.getpeercert()  # {} when none was presented; only verified ones
    for rdn in (certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class WithClientCertificate:
    """An ASGI app that adds the connection's certificate name to each request's scope, then calls `app`."""

    def __init__(self, app: ASGIApp, common_name: str) -> None:
        self.app = app
        self.common_name = common_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("extensions", {})["tls"] = {"client_cert_name": self.common_name}
        await self.app(scope, receive, send)


def client_certificate_name(scope: Scope) -> str | None:
    tls = (scope.get("extensions") or {}).get("tls") or {}
    name = tls.get("client_cert_name")
    return name if isinstance(name, str) else None
