"""Serialized host-name resolution for the broker process.

The broker resolves peer names from several threads at once: asyncio's and anyio's executor threads (HTTP
forwarding, follower fetches) and PySyncObj's thread (Raft peers). glibc's own resolver is thread-safe, but not
every NSS module is: nss_wrapper (which the local test cluster uses to give pods their DNS names) and some
directory-service modules corrupt memory under concurrent lookups — we saw brokers segfault in libc there.
Resolutions are rare (peer addresses are cached), so one process-wide lock costs nothing and removes the hazard
whatever NSS the host runs. Installed once by `main`.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

_lock = threading.Lock()
_installed = False


def install_serialized_resolver() -> None:
    global _installed  # noqa: PLW0603 - one process-wide switch, set once at start-up
    if _installed:
        return
    original_getaddrinfo = socket.getaddrinfo
    original_gethostbyname = socket.gethostbyname
    original_gethostbyname_ex = socket.gethostbyname_ex

    def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return original_getaddrinfo(*args, **kwargs)

    def gethostbyname(name: str) -> str:
        with _lock:
            return original_gethostbyname(name)

    def gethostbyname_ex(name: str) -> tuple[str, list[str], list[str]]:
        with _lock:
            return original_gethostbyname_ex(name)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    _installed = True
