"""SCRAM (RFC 5802), with SHA-512 as GoQueue's mechanism (SCRAM-SHA-512, as Kafka's): both sides of the exchange.

The broker stores only the salted credential — salt, iteration count, StoredKey = H(HMAC(SaltedPassword,
"Client Key")) and ServerKey = HMAC(SaltedPassword, "Server Key") — never the password nor anything that logs in by
itself: a client proves it knows the password without sending it, and the server proves it holds the credential.

Messages (no channel binding: the gs2 header is always `n,,`):
  client-first  n,,n=<user>,r=<client nonce>
  server-first  r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
  client-final  c=biws,r=<nonce>,p=<base64 ClientProof>
  server-final  v=<base64 ServerSignature>
User names are restricted to characters SCRAM need not escape (`principal.USER_NAME`); passwords are used as their
UTF-8 bytes (no SASLprep: both ends are GoQueue's, and a password is compared as the bytes typed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

MECHANISM = "SCRAM-SHA-512"
HASH = "sha512"
MIN_ITERATIONS = 4096  # RFC 7677's minimum
DEFAULT_ITERATIONS = 8192
SALT_BYTES = 16
NONCE_BYTES = 24
GS2_HEADER = "n,,"
CHANNEL_BINDING = base64.b64encode(GS2_HEADER.encode()).decode()  # "biws"


class ScramError(ValueError):
    """A malformed message or a failed proof; the message says which, and never holds a secret."""


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _hmac(hash_name: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hash_name).digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ScramError(f"{what} is not base64") from None


def salted_password(password: str, salt: bytes, iterations: int, hash_name: str = HASH) -> bytes:
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


def make_credential(password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS,
                    hash_name: str = HASH) -> ScramCredential:
    """The credential the broker stores for `password` (a fresh random salt unless one is given)."""
    if iterations < MIN_ITERATIONS:
        raise ValueError(f"SCRAM needs at least {MIN_ITERATIONS} iterations, not {iterations}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = salted_password(password, salt, iterations, hash_name)
    client_key = _hmac(hash_name, salted, b"Client Key")
    return ScramCredential(salt=salt, iterations=iterations,
                           stored_key=hashlib.new(hash_name, client_key).digest(),
                           server_key=_hmac(hash_name, salted, b"Server Key"))


def _attributes(message: str, expected: str, what: str) -> dict[str, str]:
    """`a=1,b=2` → {"a": "1", "b": "2"}, with exactly the attributes `expected` names, in that order."""
    parts = message.split(",")
    keys = [part[:2] for part in parts]
    if keys != [f"{key}=" for key in expected] or any(len(part) < 3 for part in parts):
        raise ScramError(f"malformed {what}: expected attributes {','.join(expected)}")
    return {part[0]: part[2:] for part in parts}


def _nonce() -> str:
    return base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode().rstrip("=")


class ServerExchange:
    """The server's side of one exchange, from the client-first message. `finish` may be called once."""

    def __init__(self, client_first: str, lookup: Callable[[str], ScramCredential | None], *,
                 unknown_user_key: bytes, nonce: str | None = None, hash_name: str = HASH) -> None:
        if not client_first.startswith(GS2_HEADER):
            raise ScramError("malformed client-first message: channel binding is not supported (use 'n,,')")
        self._client_first_bare = client_first[len(GS2_HEADER):]
        fields = _attributes(self._client_first_bare, "nr", "client-first message")
        self.username = fields["n"]
        self._hash = hash_name
        credential = lookup(self.username)
        self.known_user = credential is not None
        # An unknown user gets a made-up salt that stays the same for that name, so the exchange looks the same as a
        # known user's until the proof fails: the answer tells nobody which user names exist. Its keys are random
        # (no key derivation: starting exchanges for made-up names must cost the broker nothing).
        key_bytes = hashlib.new(hash_name).digest_size
        self._credential = credential or ScramCredential(
            salt=_hmac("sha256", unknown_user_key, self.username.encode())[:SALT_BYTES],
            iterations=DEFAULT_ITERATIONS, stored_key=secrets.token_bytes(key_bytes),
            server_key=secrets.token_bytes(key_bytes))
        self._nonce = fields["r"] + (nonce or _nonce())
        self.server_first = (f"r={self._nonce},s={_b64(self._credential.salt)},"
                             f"i={self._credential.iterations}")
        self._done = False

    def finish(self, client_final: str) -> str:
        """Check the client's proof; returns the server-final message. Raises ScramError, and always on a second
        call (a replayed client-final)."""
        if self._done:
            raise ScramError("this exchange is finished: start a new one")
        self._done = True
        fields = _attributes(client_final, "crp", "client-final message")
        if fields["c"] != CHANNEL_BINDING:
            raise ScramError("channel binding does not match the client-first message")
        if not hmac.compare_digest(fields["r"], self._nonce):
            raise ScramError("nonce does not match this exchange")
        without_proof = client_final[:client_final.rindex(",p=")]
        auth_message = f"{self._client_first_bare},{self.server_first},{without_proof}".encode()
        signature = _hmac(self._hash, self._credential.stored_key, auth_message)
        proof = _unb64(fields["p"], "client proof")
        if len(proof) != len(signature):
            raise ScramError("wrong user name or password")
        client_key = _xor(proof, signature)
        if not self.known_user or not hmac.compare_digest(
                hashlib.new(self._hash, client_key).digest(), self._credential.stored_key):
            raise ScramError("wrong user name or password")
        return "v=" + _b64(_hmac(self._hash, self._credential.server_key, auth_message))

    @property
    def stored_key(self) -> bytes:
        """The StoredKey the proof is checked against (what names this credential in a session token)."""
        return self._credential.stored_key


class ClientExchange:
    """The client's side: `client_first`, then `respond(server_first)`, then `verify(server_final)`."""

    def __init__(self, username: str, password: str, *, nonce: str | None = None, hash_name: str = HASH) -> None:
        self._password = password
        self._hash = hash_name
        self._client_nonce = nonce or _nonce()
        self._client_first_bare = f"n={username},r={self._client_nonce}"
        self.client_first = GS2_HEADER + self._client_first_bare
        self._server_signature = b""

    def respond(self, server_first: str) -> str:
        fields = _attributes(server_first, "rsi", "server-first message")
        if not fields["r"].startswith(self._client_nonce) or len(fields["r"]) == len(self._client_nonce):
            raise ScramError("the server's nonce does not extend the client's")
        if not fields["i"].isdigit() or int(fields["i"]) < MIN_ITERATIONS:
            raise ScramError(f"the server asks for {fields['i']!r} iterations; at least {MIN_ITERATIONS} are safe")
        salted = salted_password(self._password, _unb64(fields["s"], "salt"), int(fields["i"]), self._hash)
        client_key = _hmac(self._hash, salted, b"Client Key")
        without_proof = f"c={CHANNEL_BINDING},r={fields['r']}"
        auth_message = f"{self._client_first_bare},{server_first},{without_proof}".encode()
        signature = _hmac(self._hash, hashlib.new(self._hash, client_key).digest(), auth_message)
        self._server_signature = _hmac(self._hash, _hmac(self._hash, salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(_xor(client_key, signature))}"

    def verify(self, server_final: str) -> None:
        """The server proved it holds this password's credential (or the exchange was not with the real broker)."""
        if server_final.startswith("e="):
            raise ScramError(f"the server refused: {server_final[2:]}")
        fields = _attributes(server_final, "v", "server-final message")
        if not self._server_signature or not hmac.compare_digest(
                _unb64(fields["v"], "server signature"), self._server_signature):
            raise ScramError("the server's signature is wrong: it does not hold this user's credential")
