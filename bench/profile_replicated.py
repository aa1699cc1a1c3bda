#!/usr/bin/env python3
"""Where replicated small batches spend their time (issue 18, item 7): bench/cluster.py's RF=3 acks=all row at
batch 100 over gRPC, with every broker sampled by py-spy, beside one broker alone under the same clients.

For each setup it prints the clients' records/s, each broker process's CPU (seconds of CPU per second of the run,
from /proc: on this 2-core machine three brokers and three client processes share two cores) and the CPU spent per
record, then the share of the sampled brokers' stacks under a few frames of interest and the hottest leaf frames.
py-spy leaves idle frames out: time a broker spends waiting (for a follower's next fetch, say) is in no sample, and
shows as broker CPU well below the two cores.
Flame graphs of broker 0 of the cluster and of the single broker go to `--out` (docs/perf by default).

Usage: python bench/profile_replicated.py [--seconds 6] [--rate 250] [--out docs/perf]
Needs py-spy (pip install py-spy) and ptrace rights over the brokers.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import produce_consume
import runinfo
from cluster_process import LocalCluster
from produce_consume import Broker, _grpc_worker, closed_loop

REPO = Path(__file__).resolve().parents[1]
TOPIC = "bench-rf3"
BATCH, CLIENTS = 100, 3
OF_INTEREST = {  # label → substring of a stack ("function (file:line)" frames)
    "fdatasync (Segment.flush)": "Segment.flush",
    "gRPC produce servicer": "servicer.py",
    "serving followers' fetches": "serve_replica_fetch",
    "following (fetcher)": "replicas/fetcher.py",
    "thread pool hand-offs": "concurrent/futures/thread.py",
    "ISR upkeep": "isr_upkeep.py",
    "HTTP stack (uvicorn, starlette)": "uvicorn",
    "event loop select": "select (selectors.py",
}
TOP_LEAVES = 8


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sampled_run(pids: list[int], targets: list[str], seconds: float, rate: int, tmp: Path,
                svg: Path) -> tuple[float, list[float], Path]:
    """Drive the clients while py-spy samples every broker; (records/s, CPU s/s per broker, merged raw stacks)."""
    raws = [tmp / f"{pid}.txt" for pid in pids]
    spies = [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", str(rate), "--duration",
                               str(int(seconds)), "--format", "raw", "--output", str(raw), "--nonblocking"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for pid, raw in zip(pids, raws, strict=True)]
    spies.append(subprocess.Popen(["py-spy", "record", "--pid", str(pids[0]), "--rate", str(rate), "--duration",
                                   str(int(seconds)), "--format", "flamegraph", "--output", str(svg),
                                   "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    before = [cpu_seconds(pid) for pid in pids]
    result: dict[str, tuple[float, float]] = {}
    driver = threading.Thread(target=lambda: result.update(
        run=closed_loop(_grpc_worker, CLIENTS, targets, BATCH, seconds, True)))
    driver.start()
    driver.join()
    cpu = [(cpu_seconds(pid) - b) / seconds for pid, b in zip(pids, before, strict=True)]
    for spy in spies:
        _, err = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
    merged = tmp / "merged.txt"
    merged.write_text("".join(raw.read_text() for raw in raws))
    return result["run"][0], cpu, merged


def report(label: str, rate: float, cpu: list[float], raw: Path) -> None:
    total = 0
    hits: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        total += int(count_text)
        leaves[stack.rsplit(";", 1)[-1]] += int(count_text)
        for name, needle in OF_INTEREST.items():
            if needle in stack:
                hits[name] += int(count_text)
    print(f"\n## {label}: {rate:,.0f} rec/s (gRPC binary batch {BATCH}, {CLIENTS} clients x 4 in flight)")
    print(f"  broker CPU, s per s of run: {' / '.join(f'{c:.2f}' for c in cpu)} (sum {sum(cpu):.2f}); "
          f"{sum(cpu) / rate * 1e6:.1f} µs of broker CPU per record")
    for name in OF_INTEREST:
        print(f"  {name:<36} {hits[name] / max(1, total):6.1%} of samples")
    print("  hottest leaf frames (self time):")
    for frame, count in leaves.most_common(TOP_LEAVES):
        print(f"    {count / max(1, total):6.1%}  {frame[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "perf")
    args = parser.parse_args()
    if not shutil.which("py-spy"):
        sys.exit("py-spy is missing: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    print(runinfo.header("bench/profile_replicated.py"), flush=True)
    with tempfile.TemporaryDirectory(prefix="goqueue-profile-rf3-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        (root / "single").mkdir()
        broker = Broker(root / "single")
        try:
            produce_consume.TOPIC = "bench"
            httpx.post(broker.url + "/v1/topics", json={"name": "bench", "partitions": 4}).raise_for_status()
            rate, cpu, raw = sampled_run([broker.process.pid], [f"127.0.0.1:{broker.grpc_port}"], args.seconds,
                                         args.rate, root, args.out / "single-broker-grpc-batch100.svg")
            report("one broker, RF=1", rate, cpu, raw)
        finally:
            broker.stop()
        cluster = LocalCluster(root / "cluster", env={"GOQUEUE_LOG_LEVEL": "warning"}).start()
        try:
            with cluster.client(0) as http:
                http.post("/v1/topics", json={"name": TOPIC, "partitions": 3,
                                              "replicationFactor": 3}).raise_for_status()
            produce_consume.TOPIC = TOPIC
            leaders = [cluster.leader_of(TOPIC, p) or 0 for p in range(3)]
            rate, cpu, raw = sampled_run([b.pid for b in cluster.brokers],
                                         [cluster.brokers[b].grpc_target for b in leaders], args.seconds, args.rate,
                                         root, args.out / "rf3-broker0-grpc-batch100.svg")
            report("three brokers, RF=3 acks=all", rate, cpu, raw)
        finally:
            cluster.stop()
    print(runinfo.footer())


if __name__ == "__main__":
    main()
