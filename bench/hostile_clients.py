#!/usr/bin/env python3
"""Hostile clients against one broker: does /readyz still answer and does produce go on? (issue 13, item 3)

Starts a broker (fsync=always, default limits), then measures twice for `--seconds` each:
  * baseline — a producer (JSON, 100 records of 100 bytes per request, one keep-alive connection opened first, as a
    running client has) and a prober that opens a new connection per /readyz, like the kubelet, 5 times a second;
  * hostile — the same while `--idle` connections (default 10,000) sit idle on the HTTP port and `--oversized`
    threads (default 3) keep streaming chunked bodies far over limits.maxJsonRequestBytes (each is refused with 413
    and streamed again at once), plus one 23 MB Content-Length body announced per round.
The idle connections are kept for the whole window (limits.headerTimeout is raised to 300 s for this run, so the
broker does not shed them: the worst case for the connection limit).

Prints /readyz latency (p50, p99, max, non-200 answers), the produce rate, the broker's RSS and the refusals it
counted. `ulimit -n` is raised inside the script (resource.setrlimit) for both processes.

Usage: python bench/hostile_clients.py [--seconds 10] [--idle 10000] [--oversized 3] [--max-connections 10100]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

MiB = 2**20
RECORDS = [{"value": "v" * 100}] * 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Producer(threading.Thread):
    """One producer for the whole run on one keep-alive connection (a running client's); counts per window."""

    def __init__(self, http: httpx.Client) -> None:
        super().__init__()
        self.http = http
        self.done = threading.Event()
        self.produced = 0
        self.errors = 0

    def run(self) -> None:
        while not self.done.is_set():
            try:
                response = self.http.post("/v1/topics/bench/records", json={"records": RECORDS})
                if response.status_code == 200:
                    self.produced += len(RECORDS)
                else:
                    self.errors += 1
            except httpx.HTTPError:
                self.errors += 1


def probe_window(url: str, producer: Producer, seconds: float, name: str) -> None:
    """/readyz on a new connection every 0.2 s, as the kubelet probes, while the producer runs."""
    latencies: list[float] = []
    failures = 0
    produced, errors = producer.produced, producer.errors
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        begun = time.perf_counter()
        try:
            with httpx.Client(timeout=10) as fresh:
                ok = fresh.get(url + "/readyz").status_code == 200
        except httpx.HTTPError:
            ok = False
        latencies.append(time.perf_counter() - begun)
        failures += not ok
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"{name:<9} /readyz p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms, {failures} of {len(latencies)} not 200; "
          f"produce {(producer.produced - produced) / elapsed:,.0f} records/s "
          f"({producer.errors - errors} errors)")


def status_after(sock: socket.socket) -> str:
    """The status code the broker answered before it closed, or "closed" when it sent none."""
    try:
        head = sock.recv(4096)
    except OSError:
        return "closed"
    return head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "closed"


def oversized_bodies(port: int, stop: threading.Event, answers: Counter[str]) -> None:
    """Stream a chunked body of '[' until the broker answers and closes; again, until stopped."""
    chunk = b"%x\r\n%s\r\n" % (MiB, b"[" * MiB)
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"POST /v1/topics/bench/records HTTP/1.1\r\nHost: b\r\nContent-Type: application/json"
                             b"\r\nTransfer-Encoding: chunked\r\n\r\n")
                try:
                    for _ in range(256):
                        sock.sendall(chunk)
                    answers["never refused"] += 1
                except OSError:
                    answers[status_after(sock)] += 1  # refused and closed while we were still sending
        except OSError:
            answers["connect failed"] += 1


def announced_body(port: int, stop: threading.Event, answers: Counter[str]) -> None:
    """A 23 MB body announced by Content-Length, as in the issue; the broker answers before reading it."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"POST /v1/topics/bench/records HTTP/1.1\r\nHost: b\r\nContent-Type: application/json"
                             b"\r\nContent-Length: 23000000\r\n\r\n")
                answers[status_after(sock)] += 1
        except OSError:
            answers["connect failed"] += 1
        stop.wait(0.5)


def start_broker(tmp: str, port: int, max_connections: int) -> subprocess.Popen[bytes]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GOQUEUE_")},
           "GOQUEUE_BROKER_HOST": "127.0.0.1", "GOQUEUE_BROKER_PORT": str(port),
           "GOQUEUE_BROKER_GRPCPORT": str(free_port()), "GOQUEUE_BROKER_RAFTPORT": str(free_port()),
           "GOQUEUE_BROKER_INTERNALPORT": str(free_port()),
           "GOQUEUE_STORAGE_DATADIR": f"{tmp}/data", "GOQUEUE_STORAGE_WALDIR": f"{tmp}/data/wal",
           "GOQUEUE_LIMITS_HEADERTIMEOUT": "300s", "GOQUEUE_LIMITS_MAXHTTPCONNECTIONS": str(max_connections),
           "GOQUEUE_LOG_LEVEL": "warning"}
    with open(f"{tmp}/broker.log", "wb") as log:
        broker = subprocess.Popen(["goqueue-broker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return broker
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            broker.kill()
            raise SystemExit("the broker did not become ready")
        time.sleep(0.1)


def under_attack(url: str, port: int, producer: Producer, args: argparse.Namespace, pid: int) -> None:
    """Hold the idle connections and stream the oversized bodies while one window is measured."""
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(args.idle)]
    stop = threading.Event()
    streamed: Counter[str] = Counter()
    announced: Counter[str] = Counter()
    attackers = [threading.Thread(target=oversized_bodies, args=(port, stop, streamed))
                 for _ in range(args.oversized)]
    attackers.append(threading.Thread(target=announced_body, args=(port, stop, announced)))
    for thread in attackers:
        thread.start()
    print(f"hostile:  {len(idle)} idle connections held, {args.oversized} oversized chunked bodies streaming, "
          "a 23 MB body announced every 0.5 s")
    try:
        probe_window(url, producer, args.seconds, "hostile")
        peak_rss = rss_mib(pid)
        metrics = httpx.get(url + "/metrics", timeout=30).text
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
        for sock in idle:
            sock.close()
    print(f"broker RSS {peak_rss:.0f} MiB under attack; streamed bodies answered {dict(streamed)}, "
          f"announced 23 MB bodies answered {dict(announced)}")
    print("\n".join(line for line in metrics.splitlines()
                    if line.startswith(("goqueue_limit_refusals_total", "goqueue_open_connections"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--oversized", type=int, default=3)
    parser.add_argument("--max-connections", type=int, default=10_100, help="limits.maxHttpConnections: the "
                        "default (10,000) would leave the oversized bodies only probe slots (answered 503 OVERLOADED "
                        "before the body is looked at); 10,100 lets them reach the body limit")
    args = parser.parse_args()
    fds = raise_fd_limit(args.idle + 1024)
    if fds < args.idle + 256:
        raise SystemExit(f"only {fds} file descriptors allowed; run as root or lower --idle")
    with tempfile.TemporaryDirectory(prefix="goqueue-hostile-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        broker = start_broker(tmp, port, args.max_connections)
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                http.post("/v1/topics", json={"name": "bench", "partitions": 4})
                print(f"broker RSS {rss_mib(broker.pid):.0f} MiB at start; {os.cpu_count()} CPUs; fd limit {fds}; "
                      f"limits.maxHttpConnections {args.max_connections}")
                producer = Producer(http)
                producer.start()
                try:
                    probe_window(url, producer, args.seconds, "baseline")
                    under_attack(url, port, producer, args, broker.pid)
                finally:
                    producer.done.set()
                    producer.join()
        finally:
            broker.terminate()
            broker.wait(60)


if __name__ == "__main__":
    main()
