"""What a client trusts and presents over TLS: `ClientTls(ca_file, cert_file, key_file)`.

`ca_file` is the CA bundle the brokers' certificates are checked against (an operator-run cluster publishes it in
the Secret `<cluster>-cluster-ca-cert`; None trusts the system's CAs). `cert_file` and `key_file` are a client
certificate for mTLS: the broker authenticates its CN as `User:<CN>` (docs/SECURITY.md). The HTTP client uses it for
`https://` servers; the gRPC client opens TLS channels with it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from goqueue.errors import InvalidRequest


@dataclass(frozen=True)
class ClientTls:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise InvalidRequest("a client certificate needs both --cert and --key")

    def ssl_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file is not None else None)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidRequest(f"--ca {self.ca_file}: {exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            if self.cert_file is not None and self.key_file is not None:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidRequest(f"client certificate {self.cert_file} / key {self.key_file}: {exc}") from None
        return context

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "--ca") if self.ca_file is not None else None,
            private_key=_read(self.key_file, "--key") if self.key_file is not None else None,
            certificate_chain=_read(self.cert_file, "--cert") if self.cert_file is not None else None)


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"{flag} {path}: {exc.strerror}") from None
