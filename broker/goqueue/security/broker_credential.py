"""The broker credential: every request to the internal (broker-to-broker) listener is signed by the sending broker.

A request signature, not a bearer token, so nothing an eavesdropper sees can be used again for another request:

    X-GoQueue-Broker-Credential: v1 broker=<id> ts=<unix ms> nonce=<32 hex> sig=<64 hex>

`sig` is HMAC-SHA256, under a key derived (HKDF-SHA256) from `cluster.password`, of the version, broker id,
timestamp, nonce, the receiving broker's address (host:port, so a request captured on its way to one broker is no
good at another), method, path with query, and the SHA-256 of the body. The receiver refuses (UNAUTHENTICATED) a
missing or malformed header, a wrong signature, a timestamp more than `MAX_SKEW_S` from its clock, and a nonce it
has already accepted. Every broker holds the same key (the cluster password is the cluster's one shared secret), so
the broker id names who signed for the logs; it is not a separate identity. Without a password (a single broker)
nothing can be signed or verified: the internal listener then accepts nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from goqueue.errors import Unauthenticated

HEADER = "X-GoQueue-Broker-Credential"
VERSION = "v1"
MAX_SKEW_S = 30.0
# Nonces accepted within the last 2 x MAX_SKEW_S are remembered; past this many the oldest are forgotten and every
# request at least as old as them is refused as stale (a replay of a forgotten nonce cannot pass).
NONCE_CAPACITY = 200_000

_KDF_SALT = b"goqueue/broker-credential"
_KDF_INFO = b"goqueue broker-to-broker request signature v1"
_CREDENTIAL = re.compile(VERSION + r" broker=(\d{1,9}) ts=(\d{1,16}) nonce=([0-9a-f]{32}) sig=([0-9a-f]{64})")

Clock = Callable[[], float]


def derive_key(password: str) -> bytes:
    """The signing key: HKDF-SHA256 of the cluster password (a key of its own, not the Raft transport's)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_KDF_SALT, info=_KDF_INFO).derive(password.encode())


def authority(host: str, port: int) -> bytes:
    """A broker's address as both sides sign it: the advertised host (IPv6 without brackets) and the port."""
    return f"{host.strip('[]').lower()}:{port}".encode()


def _signature(key: bytes, broker_id: int, timestamp_ms: int, nonce: str, receiver: bytes, method: str,
               target: bytes, body: bytes) -> str:
    message = b"\n".join([VERSION.encode(), str(broker_id).encode(), str(timestamp_ms).encode(), nonce.encode(),
                          receiver, method.upper().encode(), target, hashlib.sha256(body).hexdigest().encode()])
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class BrokerSigner:
    """Signs this broker's requests to other brokers' internal listeners."""

    def __init__(self, broker_id: int, password: str, clock: Clock) -> None:
        self.broker_id = broker_id
        self._key = derive_key(password)
        self._clock = clock

    def credential(self, receiver: bytes, method: str, target: bytes, body: bytes) -> str:
        """The header value for one request to `receiver` (`authority`); `target` is the raw path with its query
        (`/a/b?x=1`)."""
        timestamp_ms = int(self._clock() * 1000)
        nonce = secrets.token_hex(16)
        signature = _signature(self._key, self.broker_id, timestamp_ms, nonce, receiver, method, target, body)
        return f"{VERSION} broker={self.broker_id} ts={timestamp_ms} nonce={nonce} sig={signature}"


@dataclass(frozen=True)
class _Credential:
    broker_id: int
    timestamp_ms: int
    nonce: str
    signature: str


class _SeenNonces:
    """Nonces already accepted, each until it is too old to pass the timestamp check anyway."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._expiry: OrderedDict[str, float] = OrderedDict()  # insertion order
        self.floor_s = 0.0  # a request this old or older may be a replay of a forgotten nonce

    def add(self, nonce: str, timestamp_s: float, now_s: float) -> bool:
        """False when the nonce was seen (a replay); otherwise remembers it."""
        while self._expiry and next(iter(self._expiry.values())) < now_s:
            self._expiry.popitem(last=False)
        if nonce in self._expiry:
            return False
        if len(self._expiry) >= self._capacity:
            _, expired_at = self._expiry.popitem(last=False)
            self.floor_s = max(self.floor_s, expired_at - 2 * MAX_SKEW_S)
        self._expiry[nonce] = timestamp_s + 2 * MAX_SKEW_S
        return True


class BrokerVerifier:
    """Checks the credential of each request arriving on this broker's internal listener (`receiver`, its
    `authority`); `None` password: refuses all."""

    def __init__(self, password: str | None, receiver: bytes, clock: Clock,
                 nonce_capacity: int = NONCE_CAPACITY) -> None:
        self._key = derive_key(password) if password else None
        self._receiver = receiver
        self._clock = clock
        self._seen = _SeenNonces(nonce_capacity)
        # The nonces a previous process accepted are gone: a request signed before this verifier existed could be
        # a replay of one of them (captured in the 30 s before a restart), so it is stale. The cost: for its first
        # seconds a restarted broker refuses (retriably, once) requests from a peer whose clock is behind its own.
        self._seen.floor_s = clock() - 0.001  # timestamps are whole milliseconds: this one's own is not "before"

    def verify(self, credential: str | None, method: str, target: bytes, body: bytes) -> int:
        """The signing broker's id; raises Unauthenticated for anything but a fresh, valid, first-seen credential."""
        if self._key is None:
            raise Unauthenticated("this broker has no cluster.password: its internal listener accepts no request")
        if credential is None:
            raise Unauthenticated(f"broker-to-broker request without a broker credential ({HEADER})")
        parsed = _parse(credential)
        expected = _signature(self._key, parsed.broker_id, parsed.timestamp_ms, parsed.nonce, self._receiver, method,
                              target, body)
        if not hmac.compare_digest(expected, parsed.signature):
            raise Unauthenticated("broker credential does not match this request (a wrong cluster.password, a "
                                  "request signed for another broker, or one altered on the way)")
        now_s, sent_s = self._clock(), parsed.timestamp_ms / 1000
        if abs(now_s - sent_s) > MAX_SKEW_S or sent_s <= self._seen.floor_s:
            raise Unauthenticated(f"stale broker credential: signed {now_s - sent_s:+.1f}s from this broker's clock "
                                  f"(at most {MAX_SKEW_S:.0f}s either way)")
        if not self._seen.add(parsed.nonce, sent_s, now_s):
            raise Unauthenticated("replayed broker credential: its nonce was already used")
        return parsed.broker_id


def _parse(credential: str) -> _Credential:
    match = _CREDENTIAL.fullmatch(credential)
    if match is None:
        raise Unauthenticated(f"malformed broker credential; expected '{VERSION} broker=<id> ts=<unix ms> "
                              "nonce=<32 hex> sig=<64 hex>'")
    broker, timestamp, nonce, signature = match.groups()
    return _Credential(int(broker), int(timestamp), nonce, signature)
