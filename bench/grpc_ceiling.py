#!/usr/bin/env python3
"""What grpc.aio itself costs on this machine: a server that answers every unary call with its request and does
nothing else, driven like `produce_consume.py` drives the broker (client processes x calls in flight, closed loop).

It bounds what any grpc.aio service can reach here, GoQueue's included: calls/s, and the server's CPU per call
(user + system of its process over the run, from /proc), beside which GoQueue's "CPU per request: broker" is read.

Usage: python bench/grpc_ceiling.py [--seconds 3] [--clients 3] [--in-flight 4] [--size 100]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path
from typing import Any

import grpc
import runinfo

SERVICE, METHOD = "ceiling.Echo", "Call"


def _serve(port: int, ready: Any) -> None:
    async def main() -> None:
        server = grpc.aio.server()

        async def call(request: bytes, _context: Any) -> bytes:
            return request

        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(call)}),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    asyncio.run(main())


def _client(port: int, seconds: float, in_flight: int, size: int) -> tuple[int, float]:
    async def main() -> int:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(f"/{SERVICE}/{METHOD}")
            payload, done, end = b"x" * size, 0, time.monotonic() + seconds

            async def loop() -> None:
                nonlocal done
                while time.monotonic() < end:
                    await call(payload)
                    done += 1

            await asyncio.gather(*(loop() for _ in range(in_flight)))
            return done

    started = time.process_time()
    calls = asyncio.run(main())
    return calls, time.process_time() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--size", type=int, default=100, help="request (and answer) bytes")
    args = parser.parse_args()
    print(runinfo.header("grpc.aio echo ceiling"), flush=True)
    spawn = mp.get_context("spawn")
    port = free_port()
    ready = spawn.Event()
    server = spawn.Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait(30)
    cpu_before = _cpu_seconds(server.pid or 0)
    with spawn.Pool(args.clients) as pool:
        results = pool.starmap(_client, [(port, args.seconds, args.in_flight, args.size)] * args.clients)
    server_cpu = _cpu_seconds(server.pid or 0) - cpu_before
    server.terminate()
    calls = sum(r[0] for r in results)
    print(f"echo, {args.clients} clients x {args.in_flight} in flight, {args.size} B: {calls / args.seconds:,.0f} "
          f"calls/s  (CPU per call: server {server_cpu / calls * 1e6:,.0f} µs, clients "
          f"{sum(r[1] for r in results) / calls * 1e6:,.0f} µs)")
    print(runinfo.footer())


if __name__ == "__main__":
    main()
