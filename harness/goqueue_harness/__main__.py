"""``python -m goqueue_harness up|down|status|build|demo|kubelet``: the harness's command line.

Why: the Makefile (``make up`` / ``make down``), CI and a developer all start
and stop the same control plane the same way; pytest's fixtures call the same
functions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from goqueue_harness.binaries import BinariesUnavailable, locate_binaries
from goqueue_harness.controlplane import ControlPlane, ControlPlaneError, default_state_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m goqueue_harness", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=None,
                        help=f"control-plane state directory (default {default_state_dir()})")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build or reuse the pinned binaries; print their directory")
    up = sub.add_parser("up", help="start etcd, kube-apiserver, kube-controller-manager and the kubelet")
    up.add_argument("--no-kubelet", action="store_true", help="control plane only")
    up.add_argument("--resize-mode", choices=("online", "offline"), default="online")
    down = sub.add_parser("down", help="stop everything; delete cluster data (keeps the PKI)")
    down.add_argument("--keep-data", action="store_true")
    sub.add_parser("status", help="print state as JSON; exit 1 unless the control plane is ready")
    demo = sub.add_parser("demo", help="helm install charts/goqueue-operator, apply the sample GoQueueCluster, "
                          "wait until it is Ready (what `make up` runs after `up`)")
    demo.add_argument("--namespace", default="goqueue")
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for Ready")
    kubelet = sub.add_parser("kubelet", help="run the process-kubelet in the foreground (used by `up`)")
    kubelet.add_argument("--resize-mode", choices=("online", "offline"), default="online")
    storage = sub.add_parser("kind-storage", help="serve the expandable StorageClass of a kind cluster in the "
                             "foreground (started by goqueue_harness.kind)")
    storage.add_argument("--kubeconfig", type=Path, required=True)
    storage.add_argument("--volumes-dir", type=Path, required=True, help="host directory of the volumes")
    storage.add_argument("--node-volumes-dir", type=Path, required=True, help="the same directory inside the node")
    make_up = sub.add_parser("make-up", help="`make up`: GoQueue on kind where Docker works, else on the local "
                             "control plane")
    make_up.add_argument("--backend", choices=("auto", "kind", "local"), default="auto")
    sub.add_parser("make-down", help="`make down`: delete make up's kind cluster, stop a Docker daemon it started, "
                   "stop the local control plane")
    args = parser.parse_args(argv)
    if args.command == "kind-storage":
        from goqueue_harness import kind_storage

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        kind_storage.main(args.kubeconfig, args.volumes_dir, args.node_volumes_dir)
        return 0
    cp = ControlPlane(args.state_dir)
    try:
        if args.command == "make-up":
            return _make_up(args, cp)
        if args.command == "make-down":
            return _make_down(cp)
        return _dispatch(args, cp)
    except (BinariesUnavailable, ControlPlaneError, RuntimeError) as exc:
        print(f"goqueue_harness: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, cp: ControlPlane) -> int:
    # Imported here so `build` works before the kubelet's dependencies are installed.
    from goqueue_harness.kubelet.daemon import kubelet_dir, kubelet_running, start_kubelet, stop_kubelet

    if args.command == "build":
        print(locate_binaries().path)
    elif args.command == "up":
        started = time.monotonic()
        bins = locate_binaries()
        cp.start(bins=bins)
        if not args.no_kubelet:
            start_kubelet(cp, resize_mode=args.resize_mode)
        print(f"control plane ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
        print(f"export KUBECONFIG={cp.kubeconfig}")
        print(f"# kubectl: {bins.kubectl}   helm: {bins.helm}", file=sys.stderr)
    elif args.command == "down":
        stop_kubelet(cp)
        cp.stop(wipe=not args.keep_data)
        if not args.keep_data:
            shutil.rmtree(kubelet_dir(cp), ignore_errors=True)
    elif args.command == "status":
        status = cp.status()
        status["daemons"]["kubelet"] = kubelet_running(cp)
        print(json.dumps(status, indent=2))
        return 0 if status["ready"] else 1
    elif args.command == "demo":
        from goqueue_harness.demo import next_steps, run_demo, save_operator_password

        if not cp.is_running() or not kubelet_running(cp):
            raise RuntimeError(f"no control plane with a kubelet in {cp.state_dir}: run `up` first")
        started = time.monotonic()
        bins = locate_binaries()
        demo = run_demo(bins, cp.kubeconfig, kubelet_dir(cp), namespace=args.namespace, timeout_s=args.timeout)
        print(f"operator and GoQueueCluster ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
        save_operator_password(bins, cp.kubeconfig, demo, cp.state_dir)
        print(next_steps(demo, bins, cp.kubeconfig, cp.state_dir))
    elif args.command == "kubelet":
        from goqueue_harness.kubelet.agent import run_kubelet

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the log
        kdir = kubelet_dir(cp)
        kdir.mkdir(parents=True, exist_ok=True)
        asyncio.run(run_kubelet(cp.kubeconfig, kdir, cp.volumes_dir, resize_mode=args.resize_mode))
    return 0


def _make_up(args: argparse.Namespace, cp: ControlPlane) -> int:
    from goqueue_harness import kind_demo
    from goqueue_harness.docker import DockerUnavailable, ensure_docker

    backend = args.backend
    if backend == "auto":
        try:
            ensure_docker()
            backend = "kind"
        except DockerUnavailable as exc:
            print(f"make up: Docker cannot run here ({exc}); using the local control plane instead "
                  "(`make up BACKEND=local` chooses it)", file=sys.stderr)
            backend = "local"
    if backend == "kind":
        print(kind_demo.up())
        return 0
    _dispatch(argparse.Namespace(command="up", no_kubelet=False, resize_mode="online"), cp)
    return _dispatch(argparse.Namespace(command="demo", namespace="goqueue", timeout=300.0), cp)


def _make_down(cp: ControlPlane) -> int:
    from goqueue_harness import kind_demo
    from goqueue_harness.kubelet.daemon import kubelet_running

    for line in kind_demo.down():
        print(f"make down: {line}")
    was_running = cp.is_running() or kubelet_running(cp)
    _dispatch(argparse.Namespace(command="down", keep_data=False), cp)
    print("make down: local control plane stopped" if was_running else "make down: no local control plane")
    return 0


if __name__ == "__main__":
    sys.exit(main())
