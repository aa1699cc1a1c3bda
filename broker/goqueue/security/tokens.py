"""Session tokens: what a SCRAM exchange ends in, sent as `Authorization: Bearer <token>` until it expires.

`gq1.<payload>.<signature>`: the payload (base64url JSON) names the principal, the expiry and a tag of the credential
it was issued for; the signature is HMAC-SHA-256 under a key every broker of the cluster derives from
`cluster.password`, so a token one broker issued works on all of them. A single broker without a password signs with
a random key of its own (tokens end with its process). Changing a user's password changes the tag, so the tokens
issued for the old password stop working at once; deleting the user ends them too (the gatekeeper checks both).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

PREFIX = "gq1"
KEY_CONTEXT = b"goqueue session token signing key v1"


class TokenError(ValueError):
    """The token is malformed, tampered with, or expired; the message says which and never quotes the token."""


@dataclass(frozen=True)
class Session:
    principal: str  # `User:<name>`
    expires_at_s: float
    credential_tag: str


def cluster_key(password: str, context: bytes = KEY_CONTEXT) -> bytes:
    """A key every broker of a cluster derives alike from its password, one per `context` (never the password)."""
    return hmac.new(password.encode(), context, hashlib.sha256).digest()


def random_key() -> bytes:
    return secrets.token_bytes(32)


def credential_tag(stored_key: bytes) -> str:
    """Names one credential (one password) without revealing it: tokens of an older password carry another tag."""
    return hashlib.sha256(b"goqueue credential tag" + stored_key).hexdigest()[:16]


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: str) -> str:
        return _encode(hmac.new(self._key, f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest())

    def issue(self, session: Session) -> str:
        payload = _encode(json.dumps({"p": session.principal, "exp": session.expires_at_s,
                                      "tag": session.credential_tag}, separators=(",", ":")).encode())
        return f"{PREFIX}.{payload}.{self._sign(payload)}"

    def verify(self, token: str, now_s: float) -> Session:
        prefix, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if prefix != PREFIX or not payload or not signature:
            raise TokenError("the bearer token is not a GoQueue session token")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise TokenError("the bearer token's signature is wrong (tampered with, or from another cluster)")
        try:
            fields = json.loads(_decode(payload))
            session = Session(str(fields["p"]), float(fields["exp"]), str(fields["tag"]))
        except (ValueError, KeyError, TypeError):
            raise TokenError("the bearer token's payload is malformed") from None
        if now_s >= session.expires_at_s:
            raise TokenError("the session token expired: authenticate again")
        return session
