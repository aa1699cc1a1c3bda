#!/usr/bin/env python3
"""Where a small produce spends its time: py-spy flame graphs of the broker under closed-loop produce.

For each case (gRPC binary batch in unary calls and on a ProduceBatchStream, HTTP binary batch; at batch 1 and 100
records of 100 bytes, fdatasync before every acknowledgement as in bench/produce_consume.py) a fresh broker is
started, the clients of produce_consume.py drive it for `--seconds`, and `py-spy record` samples the broker process
meanwhile (all threads, idle frames left out, so the picture is where CPU goes). Each graph is written to
docs/perf/<case>.svg with the throughput the clients saw in the same run printed beside it; a summary table gives the
share of the broker's samples under a few frames of interest (a second py-spy on the same process writes the collapsed
stacks it is computed from).

Usage: python bench/profile_produce.py [--seconds 8] [--clients 3] [--out docs/perf] [--rate 250]
                                      [--cases grpc-binary-batch1,http-binary-batch100]
Needs py-spy (pip install py-spy) and root or ptrace rights over the broker process.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import produce_consume as pc
import runinfo

REPO = Path(__file__).resolve().parents[1]
CASES = [("grpc-binary", pc._grpc_worker, 1), ("grpc-binary", pc._grpc_worker, 100),
         ("grpc-binary-stream", pc._grpc_stream_worker, 1), ("grpc-binary-stream", pc._grpc_stream_worker, 100),
         ("http-binary", pc._http_worker, 1), ("http-binary", pc._http_worker, 100)]
# Frames whose share of the broker's samples the summary prints (substring of "function (file)").
TOP_LEAVES = 8
HOTTEST: dict[str, list[tuple[str, float]]] = {}  # case -> its hottest leaf frames, printed after the table
OF_INTEREST = {
    "fdatasync": "fdatasync",
    "event loop select": "select (selectors.py",
    "pydantic": "pydantic",
    "grpc servicer": "servicer.py",
    "fastapi routing": "routing.py",
    "batch encode/decode": "batch.py",
    "log append": "append (goqueue/storage/log.py",
}


def profile(case: str, worker: object, batch: int, seconds: float, clients: int, rate: int, out: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="goqueue-profile-") as tmp:
        root = Path(tmp)
        broker = pc.Broker(root)
        try:
            import httpx
            httpx.post(f"{broker.url}/v1/topics", json={"name": pc.TOPIC, "partitions": 4}).raise_for_status()
            raw = root / "profile.txt"
            name = f"{case}-batch{batch}"
            svg = out / f"{name}.svg"
            # Two samplers of the same process: py-spy's own flame graph, and the collapsed stacks for the table.
            spies = [subprocess.Popen(["py-spy", "record", "--pid", str(broker.process.pid), "--rate", str(rate),
                                       "--duration", str(int(seconds)), "--format", fmt, "--output", str(path),
                                       "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for fmt, path in (("raw", raw), ("flamegraph", svg))]
            target = f"127.0.0.1:{broker.grpc_port}" if case.startswith("grpc") else broker.url
            result: dict[str, tuple[float, float]] = {}
            driver = threading.Thread(target=lambda: result.update(
                run=pc.closed_loop(worker, clients, target, batch, seconds, True)))  # type: ignore[arg-type]
            driver.start()
            driver.join()
            for spy in spies:
                _, err = spy.communicate(timeout=seconds + 60)
                if spy.returncode != 0:
                    raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
            rate_rps, p99 = result["run"]
            shares, hottest = summarize(raw)
            HOTTEST[name] = hottest
            shown = svg.relative_to(REPO) if svg.is_relative_to(REPO) else svg
            return (f"| {name} | {rate_rps:,.0f} | {p99 * 1000:.1f} | "
                    + " | ".join(f"{shares[label]:.0%}" for label in OF_INTEREST) + f" | {shown} |")
        finally:
            broker.stop()


def summarize(raw: Path) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Share of samples whose stack holds each frame of interest, and the hottest leaf frames (self time)."""
    total = 0
    hits: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        leaves[stack.rsplit(";", 1)[-1]] += count
        for label, needle in OF_INTEREST.items():
            if needle in stack:
                hits[label] += count
    shares = {label: hits[label] / total if total else 0.0 for label in OF_INTEREST}
    return shares, [(frame, n / total) for frame, n in leaves.most_common(TOP_LEAVES)] if total else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "perf")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = parser.parse_args()
    wanted = set(filter(None, args.cases.split(",")))
    unknown = wanted - {f"{case}-batch{batch}" for case, _, batch in CASES}
    if unknown:
        sys.exit(f"unknown --cases {sorted(unknown)}: the cases are "
                 + ", ".join(f"{case}-batch{batch}" for case, _, batch in CASES))
    if not shutil.which("py-spy"):
        sys.exit("py-spy is missing: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    print(runinfo.header("bench/profile_produce.py"))
    print("| case | rec/s | p99 ms | " + " | ".join(OF_INTEREST) + " | flame graph |")
    print("|---|---:|---:|" + "---:|" * len(OF_INTEREST) + "---|")
    for case, worker, batch in CASES:
        if wanted and f"{case}-batch{batch}" not in wanted:
            continue
        print(profile(case, worker, batch, args.seconds, args.clients, args.rate, args.out), flush=True)
    for name, hottest in HOTTEST.items():
        print(f"\n{name}: hottest frames (self time, share of the broker's samples)")
        for frame, share in hottest:
            print(f"  {share:5.1%}  {frame}")
    print(runinfo.footer())


if __name__ == "__main__":
    main()
