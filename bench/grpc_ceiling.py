#!/usr/bin/env python3
"""What grpc.aio itself costs on this machine: a server that answers every unary call with its request and does
nothing else, driven like `produce_consume.py` drives the broker (client processes x calls in flight, closed loop).
With `--stream` the same echo runs on one bidirectional stream per client process instead, its messages pipelined
(`in-flight` outstanding at a time), as ProduceBatchStream is used.

It bounds what any grpc.aio service can reach here, GoQueue's included: calls/s, and the server's CPU per call
(user + system of its process over the run, from /proc), beside which GoQueue's "CPU per request: broker" is read.

Usage: python bench/grpc_ceiling.py [--seconds 3] [--clients 3] [--in-flight 4] [--size 100] [--stream]
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

SERVICE, METHOD, STREAM = "ceiling.Echo", "Call", "Stream"


def _serve(port: int, ready: Any) -> None:
    async def main() -> None:
        server = grpc.aio.server()

        async def call(request: bytes, _context: Any) -> bytes:
            return request

        async def stream(requests: Any, _context: Any) -> Any:
            async for request in requests:
                yield request

        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(call),
                      STREAM: grpc.stream_stream_rpc_method_handler(stream)}),))
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


def _stream_client(port: int, seconds: float, in_flight: int, size: int) -> tuple[int, float]:
    async def main() -> int:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream(f"/{SERVICE}/{STREAM}")()
            payload, done, end = b"x" * size, 0, time.monotonic() + seconds
            window = asyncio.Semaphore(in_flight)

            async def write() -> None:
                while time.monotonic() < end:
                    await window.acquire()
                    await call.write(payload)
                await call.done_writing()

            async def read() -> None:
                nonlocal done
                while await call.read() is not grpc.aio.EOF:
                    done += 1
                    window.release()

            await asyncio.gather(write(), read())
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
    parser.add_argument("--stream", action="store_true", help="messages on one stream per client, not unary calls")
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
        results = pool.starmap(_stream_client if args.stream else _client,
                               [(port, args.seconds, args.in_flight, args.size)] * args.clients)
    server_cpu = _cpu_seconds(server.pid or 0) - cpu_before
    server.terminate()
    calls = sum(r[0] for r in results)
    kind = "messages on a stream" if args.stream else "unary calls"
    print(f"echo, {kind}, {args.clients} clients x {args.in_flight} in flight, {args.size} B: "
          f"{calls / args.seconds:,.0f}/s  (CPU per call: server {server_cpu / calls * 1e6:,.0f} µs, clients "
          f"{sum(r[1] for r in results) / calls * 1e6:,.0f} µs)")
    print(runinfo.footer())


if __name__ == "__main__":
    main()
