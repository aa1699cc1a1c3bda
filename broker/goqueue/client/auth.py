"""Client credentials: a user name and password turned into a session token by a SCRAM-SHA-512 exchange, and the
token kept and renewed before it expires (shared by the HTTP and gRPC clients; docs/SECURITY.md).

The password stays in this process: the exchange proves it without sending it, and `credential_spec` computes what
`goqueue-admin user create` stores (salted keys) on the client too.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from goqueue.errors import Unauthenticated
from goqueue.models import ScramCredentialSpec
from goqueue.security.scram import ClientExchange, ScramError, make_credential

REFRESH_AT = 0.8  # authenticate again once this share of a token's lifetime has passed


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)

    def exchange(self) -> ClientExchange:
        return ClientExchange(self.user, self.password)


def client_final(exchange: ClientExchange, server_first: str) -> str:
    try:
        return exchange.respond(server_first)
    except ScramError as exc:
        raise Unauthenticated(f"SCRAM: {exc}") from None


def verify_server(exchange: ClientExchange, server_final: str) -> None:
    try:
        exchange.verify(server_final)
    except ScramError as exc:
        raise Unauthenticated(f"SCRAM: {exc}") from None


class TokenHolder:
    """The current session token, and when to get a new one (clock: the caller's, in seconds)."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._renew_at_s = 0.0

    def current(self, now_s: float) -> str | None:
        """The token to send, or None when a new one is due."""
        return self._token if self._token is not None and now_s < self._renew_at_s else None

    def store(self, token: str, expires_at_s: float, now_s: float) -> None:
        self._token = token
        self._renew_at_s = now_s + max(0.0, expires_at_s - now_s) * REFRESH_AT

    def forget(self) -> None:
        """The broker refused the token (expired early, a new password): authenticate again."""
        self._token = None


def credential_spec(password: str) -> ScramCredentialSpec:
    """What the broker stores for a user with `password` (salted SCRAM-SHA-512 keys), computed here."""
    credential = make_credential(password)
    return ScramCredentialSpec(salt=base64.b64encode(credential.salt).decode(), iterations=credential.iterations,
                               stored_key=base64.b64encode(credential.stored_key).decode(),
                               server_key=base64.b64encode(credential.server_key).decode())
