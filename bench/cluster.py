#!/usr/bin/env python3
"""Three-broker benchmark (issue 5, item 8): replicated durable produce and failover time.

  * one broker alone first (a process of its own, fsync=always, a 4-partition topic of which the clients write to
    partitions 0-2): the single-broker figure of the same run, with the same clients;
  * then three brokers on this machine (127.0.0.2-4), one topic with 3 partitions, replication factor 3, acks=all,
    fsync=always on every broker; 100-byte records in binary batches (of each `--batch` size) over gRPC (unary
    calls, and pipelined on one ProduceBatchStream per client) and HTTP, closed loop — throughput and p99; client i
    writes to partition i through its leader; then each replicated figure as a ratio of the single broker's of the
    same batch and API; beside each row the CPU time all brokers spent per produce request (user + system from
    /proc, summed over the brokers), which the machine's other load moves far less than the rate;
  * failover, `--failovers` rounds: SIGKILL the leader of a partition while a producer writes to it through
    another broker, and measure the time from the kill to the next acknowledged produce on that partition. Rounds
    alternate between a partition led by the metadata (Raft) leader and one led by another broker, and each line
    says which; the killed broker is restarted and the cluster waited healthy before the next round.

Usage: python bench/cluster.py [--seconds 5] [--clients 3] [--batch 100,1000] [--failovers 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import produce_consume
import runinfo
from cluster_process import LocalCluster
from produce_consume import Broker, _grpc_stream_worker, _grpc_worker, _http_worker, closed_loop

from goqueue.storage import batch as batches

RECORD = b"v" * 100
TOPIC = "bench-rf3"


Rates = dict[tuple[str, int], float]  # (API, batch) → records/s


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system, all threads) the processes have used."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def produce_rows(label: str, grpc_targets: list[str], http_targets: list[str], args: argparse.Namespace,
                 brokers: list[int]) -> Rates:
    rates: Rates = {}
    for batch in args.batch:
        for name, worker, targets in (("gRPC binary batch", _grpc_worker, grpc_targets),
                                      ("gRPC binary batch stream", _grpc_stream_worker, grpc_targets),
                                      ("HTTP binary batch", _http_worker, http_targets)):
            cpu_before = cpu_seconds(brokers)
            rate, p99 = closed_loop(worker, args.clients, targets, batch, args.seconds, True)
            requests = rate * args.seconds / batch
            per_request = (cpu_seconds(brokers) - cpu_before) / requests if requests else 0.0
            rates[(name, batch)] = rate
            print(f"{name + ', ' + label + ', batch ' + str(batch):<58} {rate:>12,.0f} rec/s  "
                  f"closed-loop p99 {p99 * 1000:.1f} ms, brokers' CPU per request {per_request * 1e6:,.0f} µs",
                  flush=True)
    return rates


def single_broker(root: Path, args: argparse.Namespace) -> Rates:
    """The single-broker figures: one broker process, nothing else running, the same clients."""
    root.mkdir()
    broker = Broker(root)
    try:
        produce_consume.TOPIC = "bench"
        httpx.post(broker.url + "/v1/topics", json={"name": "bench", "partitions": 4}).raise_for_status()
        return produce_rows("one broker, RF=1", [f"127.0.0.1:{broker.grpc_port}"], [broker.url], args,
                            [broker.process.pid])
    finally:
        broker.stop()


def print_ratios(single: Rates, replicated: Rates) -> None:
    for (name, batch), rate in replicated.items():
        ratio = rate / single[(name, batch)] if single[(name, batch)] else 0.0
        print(f"{name + ', batch ' + str(batch) + ': RF=3 acks=all / one broker':<58} {ratio:>12.2f}x", flush=True)


def metadata_leader(cluster: LocalCluster) -> int | None:
    with cluster.client() as http:
        leader = http.get("/v1/cluster/leader").json()["leader"]
    return None if leader is None else int(leader)


def wait_healthy(cluster: LocalCluster, timeout_s: float = 120) -> None:
    """Every broker live, no partition offline or under-replicated, a metadata leader (seen by one broker)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with cluster.client() as http:
                status = http.get("/v1/cluster/status").json()
            if status.get("healthy") and status["leader"]["leader"] is not None:
                return
        except (httpx.HTTPError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"cluster not healthy after {timeout_s:.0f}s")


def failover_seconds(cluster: LocalCluster, partition: int) -> tuple[int, float]:
    """SIGKILL `partition`'s leader; (killed broker, seconds until a produce to it is acknowledged again)."""
    body = bytes(batches.build_batch([(None, RECORD, [])] * 10, int(time.time() * 1000)))
    with httpx.Client(timeout=5) as http:
        deadline = time.monotonic() + 60
        while True:  # a produce acknowledged just before the kill, through a broker that is not the leader
            leader = cluster.leader_of(TOPIC, partition)
            entry = next(i for i in range(3) if i != leader)
            url = f"{cluster.url(entry)}/v1/topics/{TOPIC}/partitions/{partition}/batches"
            try:
                if leader is not None and http.post(url, content=body).status_code == 200 \
                        and cluster.leader_of(TOPIC, partition) == leader:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"partition {partition} takes no produce before the kill")
            time.sleep(0.2)
        killed = time.monotonic()
        cluster.brokers[leader].kill()
        while True:
            try:
                if http.post(url, content=body).status_code == 200:
                    return leader, time.monotonic() - killed
            except httpx.HTTPError:
                pass
            time.sleep(0.02)


def failover_rounds(cluster: LocalCluster, rounds: int) -> None:
    for round_ in range(rounds):
        wait_healthy(cluster)
        meta = metadata_leader(cluster)
        leaders = {p: cluster.leader_of(TOPIC, p) for p in range(3)}
        want_meta = round_ % 2 == 0
        chosen = [p for p, b in leaders.items() if (b == meta) == want_meta] or list(leaders)
        partition = chosen[0]
        killed, seconds = failover_seconds(cluster, partition)
        kind = "the metadata leader" if killed == meta else "not the metadata leader"
        print(f"failover {round_ + 1}: SIGKILL broker {killed} ({kind}), leader of partition {partition} → "
              f"next acknowledged produce {seconds:.2f} s", flush=True)
        cluster.restart(killed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--batch", type=lambda text: [int(b) for b in text.split(",")], default=[100, 1000],
                        help="records per request, comma-separated sizes (default 100,1000)")
    parser.add_argument("--failovers", type=int, default=1, help="failover rounds (alternating metadata leader)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="goqueue-cluster-bench-", dir="/var/tmp"))
    print(runinfo.header("GoQueue 3-broker benchmark") + f" — data in {root}", flush=True)
    try:
        single = single_broker(root / "single", args)
        cluster = LocalCluster(root / "cluster", env={"GOQUEUE_LOG_LEVEL": "warning"}).start()
        try:
            with cluster.client(0) as http:
                http.post("/v1/topics", json={"name": TOPIC, "partitions": 3,
                                              "replicationFactor": 3}).raise_for_status()
            produce_consume.TOPIC = TOPIC
            leaders = [cluster.leader_of(TOPIC, p) or 0 for p in range(3)]
            replicated = produce_rows("3 brokers, RF=3 acks=all", [cluster.brokers[b].grpc_target for b in leaders],
                                      [cluster.url(b) for b in leaders], args, [b.pid for b in cluster.brokers])
            with cluster.client(0) as http:  # the rows above wrote to this topic, and to no other
                stored = sum(p["highWatermark"] for p in http.get(f"/v1/topics/{TOPIC}").json()["partitionDetails"])
            print(f"{'records committed in ' + TOPIC + ' (RF=3) by the runs above':<58} {stored:>12,}", flush=True)
            print_ratios(single, replicated)
            failover_rounds(cluster, args.failovers)
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(runinfo.footer())


if __name__ == "__main__":
    main()
