#!/usr/bin/env python3
"""The cost of TLS on produce (issue 15, item 8): one broker with TLS off, then one with TLS on, the same load.

Each row: 3 client processes x 4 requests in flight (produce_consume.py's closed loop), 100-byte records,
fsync=always, binary batches over HTTP and gRPC at batch 1, 100 and 1000. The TLS broker serves an ECDSA P-256
certificate from a throw-away CA (tests/integration/tls_material.py); clients verify it, keep their connections
(the handshake is paid once per connection, as real clients do), and present no client certificate.

Usage: python bench/tls_cost.py [--seconds 3] [--clients 3]
Prints a table; copy it into docs/PERFORMANCE.md with the date and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import runinfo
from broker_process import BrokerProcess
from produce_consume import CONCURRENCY, RECORD, _closed_loop_tasks
from tls_material import TestCa, broker_tls_env

from goqueue.storage import batch as batches

TOPIC = "tls-bench"
BATCHES = (1, 100, 1000)


def _http(url: str, partition: int, batch: int, seconds: float, ca: str | None) -> tuple[int, list[float]]:
    records = [(None, RECORD, [])] * batch

    async def run() -> tuple[int, list[float]]:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        async with httpx.AsyncClient(base_url=url, timeout=30, verify=verify,
                                     limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
            async def send() -> None:
                body = bytes(batches.build_batch(records, int(time.time() * 1000)))
                response = await client.post(f"/v1/topics/{TOPIC}/partitions/{partition}/batches", content=body)
                response.raise_for_status()
            return await _closed_loop_tasks(send, batch, seconds)

    return asyncio.run(run())


def _grpc(target: str, partition: int, batch: int, seconds: float, ca: str | None) -> tuple[int, list[float]]:
    from goqueue.client.grpc_client import GrpcClient
    from goqueue.client.tls import ClientTls

    raw = [(None, RECORD, [])] * batch

    async def run() -> tuple[int, list[float]]:
        async with GrpcClient(target, tls=ClientTls(Path(ca)) if ca else None) as client:
            async def send() -> None:
                await client.produce_batch(TOPIC, partition, bytes(batches.build_batch(raw, int(time.time() * 1000))))
            return await _closed_loop_tasks(send, batch, seconds)

    return asyncio.run(run())


def rate(worker: object, clients: int, target: str, batch: int, seconds: float, ca: str | None) -> float:
    with mp.get_context("spawn").Pool(clients) as pool:
        results = pool.starmap(worker, [(target, i % 4, batch, seconds, ca) for i in range(clients)])  # type: ignore[arg-type]
    return sum(r[0] for r in results) / seconds


def start(root: Path, env: dict[str, str], ca: str | None) -> BrokerProcess:
    broker = BrokerProcess(root, env={"GOQUEUE_STORAGE_FSYNC": "always", "GOQUEUE_LOG_LEVEL": "warning", **env})
    broker.start()
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
    httpx.post(broker.url + "/v1/topics", json={"name": TOPIC, "partitions": 4}, verify=verify).raise_for_status()
    return broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="goqueue-tls-bench-", dir="/var/tmp"))
    print(runinfo.header("GoQueue TLS cost") + f" — {args.clients} clients x {CONCURRENCY} in flight, "
          f"{args.seconds:g}s per row", flush=True)
    ca = TestCa(root / "ca")
    served = ca.issue("broker", "goqueue-broker")
    # Both brokers run throughout and each row alternates off, on, off, on (the better of two each): on a shared
    # machine the load moves between rows, and must not be read as the cost of TLS.
    plain = start(root / "plain", {}, None)
    secure = start(root / "tls", broker_tls_env(ca, served), str(ca.cert_file))
    print(f"\n{'produce (rec/s)':<26} {'TLS off':>12} {'TLS on':>12} {'on / off':>9}", flush=True)
    try:
        for batch in BATCHES:
            for name, worker, off_target, on_target in (
                    ("HTTP binary", _http, plain.url, secure.url),
                    ("gRPC binary", _grpc, plain.grpc_target, secure.grpc_target)):
                off = on = 0.0
                for _ in range(2):
                    off = max(off, rate(worker, args.clients, off_target, batch, args.seconds, None))
                    on = max(on, rate(worker, args.clients, on_target, batch, args.seconds, str(ca.cert_file)))
                print(f"{name + ' batch ' + str(batch):<26} {off:>12,.0f} {on:>12,.0f} {on / off:>8.2f}x", flush=True)
    finally:
        plain.stop()
        secure.stop()
    print(runinfo.footer())


if __name__ == "__main__":
    main()
