"""The gRPC side of the gatekeeper: a call's caller, from its `authorization` metadata (`Bearer <token>`).

Every rpc but ScramStart/ScramFinish resolves its caller first and checks the operation it is about to do on the
resource it names, as the HTTP routes do; a refusal is UNAUTHENTICATED or PERMISSION_DENIED with the error code in the
trailing metadata (`errors.translate_errors`).
"""

from __future__ import annotations

import grpc

from goqueue.api.gatekeeper import Access, Gatekeeper

AUTHORIZATION_KEY = "authorization"


def caller(gatekeeper: Gatekeeper, context: grpc.aio.ServicerContext) -> Access:
    found = None
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_KEY and isinstance(value, str):
            found = value
    return Access(gatekeeper, gatekeeper.principal(found, _certificate_name(context)))


def _certificate_name(context: grpc.aio.ServicerContext) -> str | None:
    """The subject CN of the client certificate grpc verified (`tls.clientAuth=required`), or None."""
    names = (context.auth_context() or {}).get("x509_common_name") or []
    return names[0].decode() if names else None
