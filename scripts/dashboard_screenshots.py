#!/usr/bin/env python3
"""Real data for the dashboard screenshots of docs/dashboards, then the screenshots (scripts/render_dashboards.py).

    PYTHONPATH=harness python scripts/dashboard_screenshots.py [--out docs/dashboards] [--load-seconds 420]

What runs, all on this machine and stopped at the end on every path (as bench/operator_timings.py does it):
  1. a private local control plane (etcd, kube-apiserver, kube-controller-manager, the process-kubelet), the operator
     chart (`helm upgrade --install charts/goqueue-operator`, as `make up BACKEND=local`), the sample GoQueueCluster
     of 3 brokers with topic my-topic and shared group my-group, and a 6-partition RF 3 topic `orders`;
  2. Debian's Prometheus on loopback scraping every 5 s the broker pods and the operator pod, found through the API
     server every 2 s and labelled with their namespace and pod as a Prometheus in the cluster labels them
     (file_sd_configs: Debian builds Prometheus without kubernetes_sd_configs);
  3. traffic: deploy/testing/load/goqueue_load.py in rounds of 30 s against the brokers' current pod IPs (acks=all,
     group `dashboards` consuming `orders`), and a slow producer to my-topic that nobody consumes (my-group's lag);
     a GoQueueTopic asking for replication factor 5 on 3 brokers (refused by the brokers: reconcile errors);
  4. after a third of the load, a settings change that rolls the three brokers (the operator's roll, one at a
     time, under that load) until the RolloutComplete Event; the load goes on to the end;
  5. every dashboard rendered over the whole window.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "harness"))
sys.path.insert(0, str(REPO / "scripts"))

import render_dashboards  # noqa: E402

from goqueue_harness.binaries import locate_binaries  # noqa: E402
from goqueue_harness.controlplane import ControlPlane  # noqa: E402
from goqueue_harness.demo import OPERATOR_NAMESPACE, Tools, install_operator, sample_manifests  # noqa: E402
from goqueue_harness.kubelet.daemon import start_kubelet, stop_kubelet  # noqa: E402

NAMESPACE = "goqueue"
SCRAPE_INTERVAL_S = 5
LOAD = REPO / "deploy" / "testing" / "load" / "goqueue_load.py"


def log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def wait(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout_s:.0f}s")
        time.sleep(interval_s)


def is_ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def prometheus_config(targets: Path) -> dict[str, Any]:
    """One job per kind of pod, its targets in a file `Discovery` keeps current (Debian's Prometheus is built
    without kubernetes_sd_configs; the file says what that would: each Running pod's port, labelled with its
    namespace and pod, as kube-prometheus-stack's ServiceMonitors label the series the dashboards select)."""
    def job(name: str) -> dict[str, Any]:
        return {"job_name": name, "file_sd_configs": [{"files": [str(targets / f"{name}.json")],
                                                        "refresh_interval": "5s"}]}
    return {"global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
            "scrape_configs": [job("goqueue"), job("goqueue-operator")]}


class Discovery(threading.Thread):
    """Pod discovery through the API server every 2 s: broker pods (port http) and operator pods (port metrics)."""

    JOBS = {"goqueue": (NAMESPACE, "http"), "goqueue-operator": (OPERATOR_NAMESPACE, "metrics")}

    def __init__(self, tools: Tools, targets: Path) -> None:
        super().__init__(daemon=True)
        self.tools, self.targets, self.stopped = tools, targets, threading.Event()
        targets.mkdir(parents=True, exist_ok=True)
        self.refresh()

    def refresh(self) -> None:
        for job, (namespace, port_name) in self.JOBS.items():
            groups = []
            for pod in self.tools.get("pods", "-n", namespace)["items"]:
                ip = pod["status"].get("podIP")
                ports = [p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])
                         if p.get("name") == port_name]
                if ip and ports and pod["status"].get("phase") == "Running":
                    groups.append({"targets": [f"{ip}:{ports[0]}"],
                                   "labels": {"namespace": namespace, "pod": pod["metadata"]["name"]}})
            path = self.targets / f"{job}.json"
            path.with_suffix(".tmp").write_text(json.dumps(groups))
            path.with_suffix(".tmp").replace(path)  # Prometheus never reads half a file

    def run(self) -> None:
        while not self.stopped.wait(2):
            try:
                self.refresh()
            except RuntimeError as exc:  # the API server busy for a moment: the next round retries
                log(f"discovery: {exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_prometheus(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = state / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(state / "targets")))
    port = free_port()
    log_file = (state / "prometheus.log").open("wb")
    proc = subprocess.Popen(["/usr/bin/prometheus", f"--config.file={config}",
                             f"--storage.tsdb.path={state / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    wait(ready, 60, "Prometheus ready")
    return proc, url


def broker_urls(tools: Tools) -> list[str]:
    pods = tools.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=broker")["items"]
    return [f"http://{p['status']['podIP']}:8080" for p in pods if is_ready(p) and p["status"].get("podIP")]


class Traffic(threading.Thread):
    """The load tool in 30-s rounds, each against the brokers' pod IPs of the moment (a roll gives every broker a
    new pod IP here): `orders` produced and consumed by group `dashboards`, my-topic produced to only."""

    def __init__(self, tools: Tools, seconds: float, state: Path) -> None:
        super().__init__(daemon=True)
        self.tools, self.deadline, self.state = tools, time.monotonic() + seconds, state
        self.rounds: list[str] = []

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            servers = broker_urls(self.tools)
            if not servers:
                time.sleep(2)
                continue
            common = [sys.executable, str(LOAD), "--server", ",".join(servers), "--no-create-topic", "--duration",
                      "30", "--setup-timeout", "30", "--drain-timeout", "20"]
            runs = [subprocess.Popen([*common, "--topic", "orders", "--rate", "150", "--batch", "20",
                                      "--record-size", "512", "--producers", "2", "--consumers", "2",
                                      "--group", "dashboards", "--keep-group"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
                    subprocess.Popen([*common, "--topic", "my-topic", "--rate", "5", "--batch", "5",
                                      "--producers", "1", "--consumers", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
            for proc in runs:
                out, _ = proc.communicate(timeout=300)
                self.rounds.append(f"exit {proc.returncode}: {out.strip().splitlines()[-1] if out.strip() else ''}")
            log(f"load round done: {' | '.join(self.rounds[-2:])[:200]}")


def cluster_events(tools: Tools) -> list[str]:
    items = tools.get("events", "-n", NAMESPACE, "--field-selector", "involvedObject.kind=GoQueueCluster")["items"]
    return [e.get("reason", "") for e in items]


def bring_up(tools: Tools) -> None:
    tools.kubectl("create", "namespace", NAMESPACE)
    install_operator(tools, NAMESPACE)
    log("operator installed")
    docs = sample_manifests(bind_pod_ip=True)
    docs.append({"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueTopic", "metadata": {"name": "orders"},
                 "spec": {"clusterRef": {"name": "goqueue"}, "partitions": 6, "replicationFactor": 3,
                          "config": {"minInsyncReplicas": 2}}})
    tools.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump_all(docs))
    wanted = [(d["kind"].lower(), d["metadata"]["name"]) for d in docs]
    wait(lambda: all(is_ready(tools.get(kind, name, "-n", NAMESPACE)) for kind, name in wanted), 400,
         "sample and orders Ready", interval_s=2)
    log("cluster, my-topic, my-group and orders Ready")


def render_all(url: str, start: float, end: float, out: Path) -> None:
    window = render_dashboards.Window(start, end, max(round((end - start) / 240), SCRAPE_INTERVAL_S),
                                      SCRAPE_INTERVAL_S)
    source = render_dashboards.Prometheus(url)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(render_dashboards.DASHBOARDS.glob("*.json")):
        target = out / f"{path.stem}.png"
        fig = render_dashboards.render_dashboard(json.loads(path.read_text()), source, window)
        log(f"wrote {target} ({render_dashboards.save_png(fig, target) // 1024} KiB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboards")
    parser.add_argument("--load-seconds", type=float, default=420)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="goqueue-dashboards-", dir="/var/tmp"))
    cp = ControlPlane(state / "cp")
    prometheus: subprocess.Popen[bytes] | None = None
    discovery: Discovery | None = None
    try:
        bins = locate_binaries()
        cp.start(bins=bins)
        start_kubelet(cp)
        tools = Tools(bins, cp.kubeconfig)
        log("control plane and kubelet ready")
        discovery = Discovery(tools, state / "targets")
        discovery.start()
        prometheus, url = start_prometheus(state)
        log(f"Prometheus at {url}")
        bring_up(tools)
        started = time.time() - 60  # the window opens on the cluster's last minute without load
        bad = {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueTopic", "metadata": {"name": "too-wide"},
               "spec": {"clusterRef": {"name": "goqueue"}, "partitions": 1, "replicationFactor": 5}}
        tools.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=json.dumps(bad))
        traffic = Traffic(tools, args.load_seconds, state)
        traffic.start()
        time.sleep(args.load_seconds / 3)  # load before the roll, drawn on the dashboards
        log("rolling the brokers: spec.config retention.maxAge 168h -> 72h")
        before = cluster_events(tools).count("RolloutComplete")
        tools.kubectl("patch", "-n", NAMESPACE, "goqueuecluster", "goqueue", "--type=merge",
                      "-p", json.dumps({"spec": {"config": {"retention.maxAge": "72h"}}}))
        wait(lambda: cluster_events(tools).count("RolloutComplete") > before, 900, "RolloutComplete", 3)
        log("RolloutComplete")
        traffic.join()
        time.sleep(2 * SCRAPE_INTERVAL_S)  # the last scrape of the last round
        end = time.time()
        render_all(url, started, end, args.out)
        log(f"window {datetime.fromtimestamp(started, UTC):%Y-%m-%dT%H:%M:%SZ} .. "
            f"{datetime.fromtimestamp(end, UTC):%Y-%m-%dT%H:%M:%SZ}; load rounds: {len(traffic.rounds)}, "
            f"failed: {sum(not r.startswith('exit 0') for r in traffic.rounds)}")
    finally:
        if discovery is not None:
            discovery.stopped.set()
            discovery.join(timeout=30)
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=60)
        stop_kubelet(cp)
        cp.stop(wipe=True)
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
