"""Bootstrap addresses: the brokers a client may talk to (`--server a,b,c`, `GOQUEUE_SERVER=a,b,c`).

Any broker serves any request (it forwards to the partition's leader or the group's coordinator), so a client needs
only one that answers. Given several, it talks to one and moves to the next when that one cannot be reached
(connection refused, no answer in time) — as a Kafka client walks its `bootstrap.servers` — so one broker down is
not an outage for the clients that were talking to it.

Thread-safe: the HTTP client is shared by threads (the load tool's producers), and two of them failing on the same
broker at once must move on by one, not two.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence


def parse_servers(servers: str | Sequence[str]) -> list[str]:
    """`"a,b , c"` or `["a", "b,c"]` → `["a", "b", "c"]`; at least one address."""
    items = [servers] if isinstance(servers, str) else list(servers)
    found = [part.strip().rstrip("/") for item in items for part in item.split(",") if part.strip()]
    if not found:
        raise ValueError(f"no broker address in {servers!r}")
    return found


class ServerList:
    def __init__(self, servers: str | Sequence[str]) -> None:
        self.servers = parse_servers(servers)
        self._index = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        return self.servers[self._index]

    def __len__(self) -> int:
        return len(self.servers)

    def failed(self, server: str) -> None:
        """`server` could not be reached: the next request goes to the one after it (unless another caller
        moved on already)."""
        with self._lock:
            if self.servers[self._index] == server:
                self._index = (self._index + 1) % len(self.servers)

    def __str__(self) -> str:
        return ",".join(self.servers)
