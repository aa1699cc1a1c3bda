"""Pod IPs: one distinct loopback address per pod, from 127.1.0.1 upwards.

Why loopback: Linux routes all of 127.0.0.0/8 to ``lo``, so every pod can bind
its own address on the same port (8080 for every broker) and be reached by IP
like a real pod, while nothing listens beyond this machine. The control plane
keeps 127.0.0.1. Addresses are not reused until the range wraps (a restarted
kubelet continues from a counter on disk), so a stale hosts entry never points
at a different pod.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

FIRST = int(ipaddress.IPv4Address("127.1.0.0"))
LAST = int(ipaddress.IPv4Address("127.254.255.255"))


def is_pod_ip(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        value = int(ipaddress.IPv4Address(ip))
    except ValueError:
        return False
    return FIRST <= value <= LAST


class AddressPool:
    """Allocates pod IPs by pod UID; remembers its position in ``counter_file``."""

    def __init__(self, counter_file: Path) -> None:
        self._counter_file = counter_file
        self._by_uid: dict[str, str] = {}
        try:
            self._next = int(counter_file.read_text())
        except (OSError, ValueError):
            self._next = FIRST

    def adopt(self, uid: str, ip: str) -> str:
        """Keep the IP an existing pod already reports (kubelet restart)."""
        self._by_uid[uid] = ip
        return ip

    def allocate(self, uid: str) -> str:
        if uid in self._by_uid:
            return self._by_uid[uid]
        in_use = set(self._by_uid.values())
        while True:
            value = self._next
            self._next = FIRST if value >= LAST else value + 1
            ip = str(ipaddress.IPv4Address(value))
            if value % 256 not in (0, 255) and ip not in in_use:
                break
        self._counter_file.parent.mkdir(parents=True, exist_ok=True)
        self._counter_file.write_text(str(self._next))
        self._by_uid[uid] = ip
        return ip

    def release(self, uid: str) -> None:
        self._by_uid.pop(uid, None)
