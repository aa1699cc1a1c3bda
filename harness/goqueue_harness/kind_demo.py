"""`make up` on kind: a Docker daemon, a kind cluster, both images loaded, the operator chart and the sample cluster.

Why a module of its own: it is what a user does on their own cluster, in order — build the images (here: tagged as
the charts' default repositories and appVersion, so the charts install unchanged and nothing is pulled), load them
into the node, `helm install` the operator, apply the sample GoQueueCluster, wait until it is Ready — and
`make up` runs it twice without changing anything (an existing cluster and release are reused).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import yaml

from goqueue_harness.binaries import locate_binaries
from goqueue_harness.demo import DEMO_NAMESPACE, next_steps_kind, run_demo
from goqueue_harness.docker import docker_info, docker_started_by_us, running_containers, stop_docker
from goqueue_harness.images import build_broker_and_operator
from goqueue_harness.kind import KindCluster

REPO = Path(__file__).resolve().parents[2]
# GOQUEUE_KIND_CLUSTER: another name (the harness's tests run make up's kind path beside a user's cluster).
CLUSTER_NAME = os.environ.get("GOQUEUE_KIND_CLUSTER", "goqueue")


def chart_images() -> tuple[str, str, str]:
    """(broker repository, operator repository, appVersion) the charts install by default."""
    operator_values = yaml.safe_load((REPO / "charts" / "goqueue-operator" / "values.yaml").read_text())
    chart = yaml.safe_load((REPO / "charts" / "goqueue-operator" / "Chart.yaml").read_text())
    return operator_values["brokerImageRepository"], operator_values["image"]["repository"], str(chart["appVersion"])


def up(timeout_s: float = 600.0) -> str:
    """Bring GoQueue up on kind; return what to type next."""
    started = time.monotonic()
    bins = locate_binaries()
    cluster = KindCluster(CLUSTER_NAME)
    created = cluster.create()
    print(f"kind cluster {CLUSTER_NAME} {'created' if created else 'reused'} "
          f"({time.monotonic() - started:.0f}s)", file=sys.stderr)
    broker_repo, operator_repo, version = chart_images()
    broker_tag, operator_tag = f"{broker_repo}:{version}", f"{operator_repo}:{version}"
    broker, operator = build_broker_and_operator([broker_tag], [operator_tag], version=version)
    for built in (broker, operator):
        print(f"image {built.tag} ({built.short_id}): {built.size_bytes / 1e6:.0f} MB, built in {built.seconds:.0f}s",
              file=sys.stderr)
    cluster.load(broker_tag, operator_tag)
    demo = run_demo(bins, cluster.kubeconfig, None, namespace=DEMO_NAMESPACE, timeout_s=timeout_s,
                    image_ids={"broker": broker.short_id, "operator": operator.short_id})
    print(f"operator and GoQueueCluster ready ({time.monotonic() - started:.0f}s in all)", file=sys.stderr)
    return next_steps_kind(demo, bins, cluster.kubeconfig, CLUSTER_NAME)


def down() -> list[str]:
    """Delete the kind cluster and stop a Docker daemon we started; one line per thing done (or not)."""
    said = []
    if not docker_info()[0]:  # no daemon answers: no kind cluster can be running (its storage daemon may)
        KindCluster(CLUSTER_NAME).stop_storage()
        said.append(f"no kind cluster {CLUSTER_NAME} (no Docker daemon runs)")
    else:
        deleted = KindCluster(CLUSTER_NAME).delete()
        said.append(f"kind cluster {CLUSTER_NAME} deleted" if deleted else f"no kind cluster {CLUSTER_NAME}")
    if not docker_started_by_us():
        said.append("no Docker daemon of ours to stop")
        return said
    others = running_containers()
    if others:  # another kind cluster (a kept e2e one, say) or the user's own containers still need it
        said.append(f"Docker daemon left running: {len(others)} other container(s) use it ({', '.join(others[:3])})")
    else:
        stop_docker()
        said.append("Docker daemon stopped (the harness had started it)")
    return said
