"""TLS of the broker's listeners and of its calls to peers, from files that may change while it runs.

One `TlsFiles` per broker (from the `tls` settings) builds:

* a server `ssl.SSLContext` per HTTP listener (`server_context`): the public one asks clients for a certificate as
  `tls.clientAuth` says; the internal one requires a broker's certificate signed by `tls.caFile`;
* gRPC server credentials (`grpc_credentials`), whose fetcher hands grpc the new files after a change;
* the client context of broker-to-broker calls and Raft connections (`peer_context`): verifies the peer against
  `tls.caFile` and presents this broker's certificate; the Raft port's server context requires a broker's
  certificate as the internal listener's does.

Reload without restart: `check()` (the server runs it every `tls.reloadCheckInterval`) compares the files' identity
(inode, size, mtime: a Secret volume swaps a symlink, so the inode changes) and, when it changed, validates the new
set in a scratch context first — a half-written or mismatched pair is refused and logged, and the old one stays in
service — then loads it into the live contexts. New connections get the new certificate; open ones keep theirs.
A CA added to a bundle is trusted at once; a CA *removed* from a bundle stays trusted until a restart (OpenSSL
contexts only add trust anchors), which is why the operator drops an old CA with a rolling restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509

from goqueue.config import TlsSection

log = logging.getLogger(__name__)

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
# "required" is enforced per request on HTTP (the gatekeeper), not in the handshake: the kubelet's probes present no
# certificate, and /healthz, /readyz and /metrics must still answer them.
_CLIENT_AUTH_MODES = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_OPTIONAL}


class TlsConfigError(ValueError):
    """The TLS files cannot be used (missing, unreadable, not PEM, a key that does not match its certificate)."""


@dataclass(frozen=True)
class _Loaded:
    """One consistent read of the files: what the contexts were built from, and its identity on disk."""

    identity: tuple[tuple[int, int, int], ...]
    cert_chain: bytes
    key: bytes
    ca: bytes | None
    client_ca: bytes | None
    not_after_s: float


class TlsFiles:
    def __init__(self, settings: TlsSection, on_reload: Callable[[str], None] = lambda result: None) -> None:
        """Read and check the files now: a broker with unusable TLS files refuses to start (`TlsConfigError`)."""
        if settings.cert_file is None or settings.key_file is None:
            raise TlsConfigError("TLS needs tls.certFile and tls.keyFile")
        self.settings = settings
        self._cert_file, self._key_file = settings.cert_file, settings.key_file
        self._on_reload = on_reload
        self._lock = threading.Lock()  # grpc's fetcher runs on grpc's threads
        self._contexts: list[tuple[ssl.SSLContext, bool]] = []  # (context, loads the client CA bundle)
        self._loaded = self._read()
        self.version = 0

    # -- contexts --------------------------------------------------------------------------------------------------

    def server_context(self, listener: str) -> ssl.SSLContext:
        """The context of a listener (`http`, `internal` or `raft`), kept current by `check()`. The broker-to-broker
        ones (internal, raft) require a certificate signed by tls.caFile."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = MINIMUM_VERSION
        internal = listener in ("internal", "raft")
        if internal:
            context.verify_mode = ssl.CERT_REQUIRED
        else:
            context.verify_mode = (_CLIENT_AUTH_MODES[self.settings.client_auth] if self.settings.verifies_clients()
                                   else ssl.CERT_NONE)
        trusts_clients = not internal and context.verify_mode != ssl.CERT_NONE
        self._load_into(context, self._loaded, client_cas=trusts_clients)
        with self._lock:
            self._contexts.append((context, trusts_clients))
        return context

    def peer_context(self) -> ssl.SSLContext:
        """The client context of calls to other brokers' internal listeners."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname checking and verification on
        context.minimum_version = MINIMUM_VERSION
        self._load_into(context, self._loaded, client_cas=False)
        with self._lock:
            self._contexts.append((context, False))
        return context

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials: grpc asks the fetcher before every handshake; it answers with the files of the
        last successful `check()` when they are newer than what grpc has."""
        served = [-1]
        require = self.settings.client_auth == "required"

        def configuration(loaded: _Loaded) -> grpc.ServerCertificateConfiguration:
            # grpc verifies client certificates only when it requires one (it never merely requests them).
            return grpc.ssl_server_certificate_configuration(
                [(loaded.key, loaded.cert_chain)], root_certificates=loaded.client_ca if require else None)

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            with self._lock:
                if served[0] == self.version:
                    return None
                served[0] = self.version
                return configuration(self._loaded)

        served[0] = self.version
        return grpc.dynamic_ssl_server_credentials(configuration(self._loaded), fetch,
                                                   require_client_authentication=require)

    @property
    def lock(self) -> threading.Lock:
        """Held while the live contexts are reloaded: whoever makes connections from them on another thread (Raft)
        holds it meanwhile."""
        return self._lock

    @property
    def not_after_s(self) -> float:
        """When the broker's certificate expires (Unix seconds): goqueue_tls_certificate_expiry_timestamp_seconds."""
        return self._loaded.not_after_s

    # -- reload ----------------------------------------------------------------------------------------------------

    def check(self) -> bool:
        """Load the files again if they changed since the last load; True when the contexts now serve new ones."""
        if self._identity() == self._loaded.identity:
            return False
        try:
            loaded = self._read()
        except TlsConfigError as exc:
            log.error("tls.reload_refused", extra={"reason": str(exc)})
            self._on_reload("refused")
            return False
        with self._lock:
            try:
                for context, client_cas in self._contexts:
                    self._load_into(context, loaded, client_cas=client_cas)
            except TlsConfigError as exc:  # proven in a scratch context a moment ago: should not happen
                log.error("tls.reload_refused", extra={"reason": str(exc)})
                self._on_reload("refused")
                return False
            self._loaded = loaded
            self.version += 1
        log.info("tls.reloaded", extra={"not_after": loaded.not_after_s})
        self._on_reload("loaded")
        return True

    # -- files -----------------------------------------------------------------------------------------------------

    def _paths(self) -> list[Path]:
        s = self.settings
        return [p for p in (s.cert_file, s.key_file, s.ca_file, s.client_ca_file) if p is not None]

    def _identity(self) -> tuple[tuple[int, int, int], ...]:
        identity = []
        for path in self._paths():
            try:
                st = os.stat(path)
            except OSError:
                identity.append((-1, -1, -1))
                continue
            identity.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(identity)

    def _read(self) -> _Loaded:
        s = self.settings
        identity = self._identity()
        cert_chain, key = _read(self._cert_file, "tls.certFile"), _read(self._key_file, "tls.keyFile")
        ca = _read(s.ca_file, "tls.caFile") if s.ca_file is not None else None
        client_ca = _read(s.client_ca_file, "tls.clientCaFile") if s.client_ca_file is not None else None
        try:
            leaf = x509.load_pem_x509_certificate(cert_chain)
        except ValueError as exc:
            raise TlsConfigError(f"tls.certFile {self._cert_file}: not a PEM certificate ({exc})") from None
        loaded = _Loaded(identity, cert_chain, key, ca, client_ca, leaf.not_valid_after_utc.timestamp())
        # Scratch contexts prove the set usable (the pair, and each CA bundle) before a live context sees it.
        for client_cas in (False, True):
            scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            scratch.verify_mode = ssl.CERT_REQUIRED
            self._load_into(scratch, loaded, client_cas=client_cas)
        return loaded

    def _load_into(self, context: ssl.SSLContext, loaded: _Loaded, *, client_cas: bool) -> None:
        try:
            # The very bytes read and checked: the files may have moved on since.
            load_cert_chain_pem(context, loaded.cert_chain, loaded.key)
            if context.verify_mode != ssl.CERT_NONE or context.check_hostname:
                bundle = loaded.client_ca if client_cas else loaded.ca
                if bundle is not None:
                    context.load_verify_locations(cadata=bundle.decode("ascii", "replace"))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TlsConfigError(f"tls.keyFile does not match tls.certFile, or a file is not PEM ({self._cert_file}, "
                                 f"{self._key_file}, {self.settings.ca_file}, {self.settings.client_ca_file}): "
                                 f"{exc}") from None


def load_cert_chain_pem(context: ssl.SSLContext, cert_chain_pem: bytes, key_pem: bytes) -> None:
    """`SSLContext.load_cert_chain` from bytes in memory (it takes paths only); also the operator's client identity."""
    with _in_memory_file(cert_chain_pem) as cert, _in_memory_file(key_pem) as key:
        context.load_cert_chain(cert, key)


@contextlib.contextmanager
def _in_memory_file(data: bytes) -> Iterator[str]:
    """A path to `data` that never touches a disk (a memfd: the key stays in memory, as it already is)."""
    fd = os.memfd_create("goqueue-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{key} {path}: {exc.strerror}") from None
