#!/usr/bin/env python3
"""Operator timings on the local control plane: what `make up BACKEND=local` does, each step timed, then a roll.

Steps, each printed with its wall time (seconds, this machine):
  1. a private control plane (etcd, kube-apiserver, kube-controller-manager, the process-kubelet) in a fresh
     state directory of its own — it shares nothing with `make up` or a test session running beside it;
  2. `helm upgrade --install charts/goqueue-operator --wait` (CRDs applied first), as `make up` does;
  3. `kubectl apply` of operator/deploy/samples/goqueue.yaml (a 3-broker GoQueueCluster, topic `my-topic`, group
     `my-group`; brokers bound to their pod IPs and sized for one small node, as `make up` does) → each Ready;
  4. `kubectl apply` of a 6-partition RF 3 GoQueueTopic → Ready (the README tour's `orders`);
  5. a settings change (`spec.config.retention.maxAge`) rolling the three brokers at the defaults
     (`minDelaySeconds: 10`, no produce load) → the `RolloutComplete` Event, with each roll Event's arrival.
Everything it started is stopped and its state directory deleted at the end, on every path.

Binaries come from `python -m goqueue_harness build` (built once, cached under ~/.cache/goqueue/).
Usage: PYTHONPATH=harness python bench/operator_timings.py [--skip-roll] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import runinfo
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from goqueue_harness.binaries import locate_binaries
from goqueue_harness.controlplane import ControlPlane
from goqueue_harness.demo import Tools, install_operator, sample_manifests
from goqueue_harness.kubelet.daemon import start_kubelet, stop_kubelet

NAMESPACE = "goqueue"
ROLL_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 300.0


def is_ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def wait(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout_s:.0f}s")
        time.sleep(interval_s)


def line(what: str, seconds: float) -> None:
    print(f"{what:<78} {seconds:7.1f} s", flush=True)


def apply_sample(tools: Tools) -> None:
    docs = sample_manifests(bind_pod_ip=True)
    wanted = {(d["kind"].lower(), d["metadata"]["name"]) for d in docs}
    started = time.monotonic()
    tools.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump_all(docs))
    ready_at: dict[tuple[str, str], float] = {}

    def all_ready() -> bool:
        for kind, name in wanted - ready_at.keys():
            if is_ready(tools.get(kind, name, "-n", NAMESPACE)):
                ready_at[(kind, name)] = time.monotonic() - started
        return ready_at.keys() == wanted

    wait(all_ready, READY_TIMEOUT_S, "sample Ready", interval_s=0.5)
    for (kind, name), seconds in sorted(ready_at.items(), key=lambda item: item[1]):
        line(f"  kubectl apply of the sample → {kind}/{name} Ready", seconds)


def apply_topic(tools: Tools) -> None:
    topic = {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueTopic", "metadata": {"name": "orders"},
             "spec": {"clusterRef": {"name": "goqueue"}, "partitions": 6, "replicationFactor": 3,
                      "config": {"retentionMaxAge": "72h", "minInsyncReplicas": 2}}}
    started = time.monotonic()
    tools.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=json.dumps(topic))
    tools.kubectl("wait", "-n", NAMESPACE, "goqueuetopic/orders", "--for=condition=Ready", "--timeout=120s")
    line("kubectl apply of GoQueueTopic orders (6 partitions, RF 3) → kubectl wait Ready", time.monotonic() - started)


def cluster_events(tools: Tools) -> dict[str, tuple[str, int, str]]:
    items = tools.get("events", "-n", NAMESPACE, "--field-selector", "involvedObject.name=goqueue,"
                      "involvedObject.kind=GoQueueCluster")["items"]
    return {e["metadata"]["name"]: (e.get("reason", ""), int(e.get("count") or 1), e.get("message", ""))
            for e in items}


def roll(tools: Tools) -> None:
    before = cluster_events(tools)
    seen: dict[str, int] = {name: count for name, (_, count, _) in before.items()}
    started = time.monotonic()
    tools.kubectl("patch", "-n", NAMESPACE, "goqueuecluster", "goqueue", "--type=merge",
                  "-p", json.dumps({"spec": {"config": {"retention.maxAge": "72h"}}}))
    done = False

    def complete() -> bool:
        nonlocal done
        for name, (reason, count, message) in cluster_events(tools).items():
            if seen.get(name, 0) < count:
                seen[name] = count
                print(f"  {time.monotonic() - started:6.1f} s  {reason:<20} {message[:90]}", flush=True)
                done = done or reason == "RolloutComplete"
        return done

    wait(complete, ROLL_TIMEOUT_S, "RolloutComplete", interval_s=0.5)
    line("settings change rolling 3 brokers (minDelaySeconds 10, no load) → RolloutComplete",
         time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-roll", action="store_true", help="stop after the topic")
    parser.add_argument("--keep", action="store_true", help="leave the control plane running (prints where)")
    args = parser.parse_args()
    print(runinfo.header("GoQueue operator timings"), flush=True)
    state = Path(tempfile.mkdtemp(prefix="goqueue-operator-bench-", dir="/var/tmp"))
    cp = ControlPlane(state)
    try:
        bins = locate_binaries()
        started = time.monotonic()
        cp.start(bins=bins)
        start_kubelet(cp)
        line("control plane + kubelet ready (binaries cached)", time.monotonic() - started)
        tools = Tools(bins, cp.kubeconfig)
        tools.kubectl("create", "namespace", NAMESPACE)
        step = time.monotonic()
        install_operator(tools, NAMESPACE)
        line("operator: CRDs applied, helm install charts/goqueue-operator --wait", time.monotonic() - step)
        step = time.monotonic()
        apply_sample(tools)
        line("sample (GoQueueCluster of 3, topic, group) applied → all Ready", time.monotonic() - step)
        line("in all, as `make up BACKEND=local` does it after the binaries", time.monotonic() - started)
        apply_topic(tools)
        if not args.skip_roll:
            roll(tools)
    finally:
        if args.keep:
            print(f"left running: KUBECONFIG={cp.kubeconfig}; stop with "
                  f"PYTHONPATH=harness python -m goqueue_harness --state-dir {state} down")
        else:
            stop_kubelet(cp)
            cp.stop(wipe=True)
            shutil.rmtree(state, ignore_errors=True)
    print(runinfo.footer())


if __name__ == "__main__":
    main()
