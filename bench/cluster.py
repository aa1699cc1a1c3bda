#!/usr/bin/env python3
"""Three-broker benchmark (issue 5, item 8): replicated durable produce and failover time.

  * three brokers on this machine (127.0.0.2-4), one topic with 3 partitions, replication factor 3, acks=all,
    fsync=always on every broker; 100-byte records in binary batches over gRPC and HTTP, closed loop —
    throughput and p99, beside the single-broker figure of the same run (same client, RF=1 topic on broker 0);
  * failover: SIGKILL the leader of partition 0 while a producer writes to it through another broker, and measure
    the time from the kill to the next acknowledged produce on that partition.

Usage: python bench/cluster.py [--seconds 5] [--clients 3] [--batch 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import produce_consume
from cluster_process import LocalCluster
from produce_consume import _grpc_worker, _http_worker, closed_loop

from goqueue.storage import batch as batches

RECORD = b"v" * 100


def failover_seconds(cluster: LocalCluster) -> float:
    """SIGKILL partition 0's leader; seconds until a produce to partition 0 is acknowledged again."""
    leader = cluster.leader_of("bench-rf3", 0)
    assert leader is not None
    entry = next(i for i in range(3) if i != leader)
    body = bytes(batches.build_batch([(None, RECORD, [])] * 10, int(time.time() * 1000)))
    url = f"{cluster.url(entry)}/v1/topics/bench-rf3/partitions/0/batches"
    with httpx.Client(timeout=5) as http:
        http.post(url, content=body).raise_for_status()
        killed = time.monotonic()
        cluster.brokers[leader].kill()
        while True:
            try:
                if http.post(url, content=body).status_code == 200:
                    return time.monotonic() - killed
            except httpx.HTTPError:
                pass
            time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="goqueue-cluster-bench-", dir="/var/tmp"))
    print(f"# GoQueue 3-broker benchmark — {time.strftime('%Y-%m-%d %H:%M')} — data in {root}")
    cluster = LocalCluster(root, env={"GOQUEUE_LOG_LEVEL": "warning"}).start()
    try:
        with cluster.client(0) as http:
            for name, rf in (("bench-rf3", 3), ("bench", 1)):
                http.post("/v1/topics", json={"name": name, "partitions": 3 if rf == 3 else 4,
                                              "replicationFactor": rf}).raise_for_status()
        # Client i writes to partition i through the broker that leads it (no forwarding hop).
        for topic in ("bench", "bench-rf3"):
            produce_consume.TOPIC = topic
            leaders = [cluster.leader_of(topic, p) or 0 for p in range(3)]
            grpc_targets = [cluster.brokers[b].grpc_target for b in leaders]
            http_targets = [cluster.url(b) for b in leaders]
            for label, worker, target, extra in (
                ("gRPC binary batch", _grpc_worker, grpc_targets, (True,)),
                ("HTTP binary batch", _http_worker, http_targets, (True,)),
            ):
                rate, p99 = closed_loop(worker, args.clients, target, args.batch, args.seconds, *extra)
                rf = "RF=3 acks=all" if topic == "bench-rf3" else "RF=1 (single broker)"
                print(f"{label + ', ' + rf + ', batch ' + str(args.batch):<52} {rate:>12,.0f} rec/s  "
                      f"closed-loop p99 {p99 * 1000:.1f} ms", flush=True)
        print(f"{'failover: SIGKILL leader → next acknowledged produce':<52} {failover_seconds(cluster):>10.2f} s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
