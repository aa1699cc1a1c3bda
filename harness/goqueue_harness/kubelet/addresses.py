"""Pod IPs: one distinct loopback address per pod, in a /16 of 127.0.0.0/8.

Why loopback: Linux routes all of 127.0.0.0/8 to ``lo``, so every pod can bind
its own address on the same port (8080 for every broker) and be reached by IP
like a real pod, while nothing listens beyond this machine. The control plane
keeps 127.0.0.1.

Each state directory gets its own /16 (``127.<n>.0.0``, ``n`` from a hash of
the path), so a ``make up`` demo and a test run on the same machine do not hand
out the same addresses; an address with a socket already bound on it (seen in
``/proc/net/tcp``) is skipped as well. Addresses are not reused until the range
wraps (a restarted kubelet continues from a counter on disk), so a stale hosts
entry never points at a different pod.
"""

from __future__ import annotations

import ipaddress
import zlib
from pathlib import Path

PODS_NETWORK_OCTETS = range(1, 255)  # 127.1.0.0/16 .. 127.254.0.0/16


def network_octet_for(state_dir: Path) -> int:
    return PODS_NETWORK_OCTETS[zlib.crc32(str(state_dir.resolve()).encode()) % len(PODS_NETWORK_OCTETS)]


def is_pod_ip(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return address.is_loopback and address.packed[1] in PODS_NETWORK_OCTETS


def addresses_in_use() -> set[str]:
    """Local IPv4 addresses with a listening TCP socket (``/proc/net/tcp``: hex, little-endian; 0A = LISTEN)."""
    used: set[str] = set()
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return used
    for line in lines:
        fields = line.split()
        if fields[3] != "0A":
            continue
        local = fields[1].split(":")[0]
        used.add(str(ipaddress.IPv4Address(bytes(reversed(bytes.fromhex(local))))))
    return used


class AddressPool:
    """Allocates pod IPs by pod UID from ``127.<octet>.0.1`` up; remembers its position on disk."""

    def __init__(self, counter_file: Path, network_octet: int) -> None:
        self._counter_file = counter_file
        self._first = int(ipaddress.IPv4Address(f"127.{network_octet}.0.1"))
        self._last = int(ipaddress.IPv4Address(f"127.{network_octet}.255.254"))
        self._by_uid: dict[str, str] = {}
        try:
            self._next = int(counter_file.read_text())
        except (OSError, ValueError):
            self._next = self._first
        if not self._first <= self._next <= self._last:
            self._next = self._first

    def adopt(self, uid: str, ip: str) -> str:
        """Keep the IP an existing pod already reports (kubelet restart)."""
        self._by_uid[uid] = ip
        return ip

    def allocate(self, uid: str) -> str:
        if uid in self._by_uid:
            return self._by_uid[uid]
        taken = set(self._by_uid.values()) | addresses_in_use()
        for _ in range(self._last - self._first + 1):
            value = self._next
            self._next = self._first if value >= self._last else value + 1
            ip = str(ipaddress.IPv4Address(value))
            if value % 256 not in (0, 255) and ip not in taken:
                break
        else:
            raise RuntimeError("no free pod IP left in the /16")
        self._counter_file.parent.mkdir(parents=True, exist_ok=True)
        self._counter_file.write_text(str(self._next))
        self._by_uid[uid] = ip
        return ip

    def release(self, uid: str) -> None:
        self._by_uid.pop(uid, None)
