#!/usr/bin/env python3
"""Does this disk commit overlapping fdatasyncs together? A group-commit round of the writer (`storage/writer.py`)
that touched N partition logs fdatasyncs N files one after the other; syncing them side by side was tried and
withdrawn (docs/PERFORMANCE.md, "Side-by-side fdatasync: tried and withdrawn").

For N files in a directory on the data volume, each round appends 100 bytes to every file and fdatasyncs them,
one after the other ("in a row") or from N threads at once ("side by side"), alternating for `--rounds` pairs of
`--seconds` each. Prints rounds/s and milliseconds per round for both.

Usage: python bench/fsync_parallel.py [--files 1,2,4,8] [--seconds 2] [--rounds 2] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import runinfo


def append_and_sync(fd: int) -> None:
    os.write(fd, b"x" * 100)
    os.fdatasync(fd)


def rounds_per_second(fds: list[int], pool: ThreadPoolExecutor | None, seconds: float) -> float:
    rounds, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        if pool is None:
            for fd in fds:
                append_and_sync(fd)
        else:
            list(pool.map(append_and_sync, fds))
        rounds += 1
    return rounds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    print(runinfo.header("bench/fsync_parallel.py"))
    print("| files | in a row: rounds/s | ms/round | side by side: rounds/s | ms/round |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="goqueue-fsync-") as root:
        for count in (int(n) for n in args.files.split(",")):
            fds = [os.open(os.path.join(root, f"{count}-{n}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                   for n in range(count)]
            try:
                with ThreadPoolExecutor(count) as pool:
                    serial, parallel = [], []
                    for _ in range(args.rounds):
                        serial.append(rounds_per_second(fds, None, args.seconds))
                        parallel.append(rounds_per_second(fds, pool, args.seconds))
                row_s, row_p = max(serial), max(parallel)
                print(f"| {count} | {row_s:,.0f} | {1e3 / row_s:.2f} | {row_p:,.0f} | {1e3 / row_p:.2f} |", flush=True)
            finally:
                for fd in fds:
                    os.close(fd)
    print(runinfo.footer())


if __name__ == "__main__":
    main()
