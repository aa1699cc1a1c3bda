"""A transport double for driving an HTTP listener's protocol (`api/http/connection_limits.py`) without a socket: it
records what was written and what was done to it (closes, an abort), and can hold bytes unsent, in itself or, as
over TLS, in the TCP transport under it (`_ssl_protocol._transport` in CPython)."""

from __future__ import annotations

import asyncio
from typing import Any


class Below:
    """The TCP transport under a TLS one (`_ssl_protocol._transport` in CPython)."""

    def __init__(self) -> None:
        self.unsent = 0

    def get_write_buffer_size(self) -> int:
        return self.unsent


class SslProtocol:
    def __init__(self) -> None:
        self._transport = Below()


class PeerCertificate:
    def getpeercert(self) -> dict[str, Any]:
        return {"subject": ((("commonName", "alice"),),)}


class RecordingTransport(asyncio.Transport):
    def __init__(self, tls_name: bool = False) -> None:
        super().__init__()
        self.closes = 0
        self.aborted = False
        self.unsent = 0  # bytes still in this transport's write buffer
        self.written = b""
        self._ssl_protocol: SslProtocol | None = SslProtocol()
        self._peer = PeerCertificate() if tls_name else None
        self.protocol_gone = False  # CPython's TLS transport once closed twice

    @property
    def closed(self) -> bool:
        return self.closes > 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080),
                "ssl_object": self._peer}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closes += 1

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        if self.protocol_gone:
            raise AttributeError("'NoneType' object has no attribute '_get_write_buffer_size'")
        return self.unsent

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass
