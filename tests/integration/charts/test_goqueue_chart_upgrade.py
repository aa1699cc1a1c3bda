"""`helm upgrade` from the previous version of charts/goqueue to this one, brokers running and producers writing
(issue 16, item 4): the chart of commit PREVIOUS (the last before this release's chart changes: the Raft password
came from an environment variable, there were no TLS values) is installed, a producer writes acks=all records the
whole time, and the release is upgraded to the working tree's chart. The StatefulSet rolls one broker at a time
(never more than one broker being replaced), the password is kept, and every acknowledged record is there afterwards."""

from __future__ import annotations

import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from chart_release import BROKERS, CHART, RELEASE, REPO, Release, install_release
from cluster_process import History, consume_all
from kubernetes import client as k8s

from goqueue.client.http import GoQueueClient
from goqueue.errors import GoQueueError
from goqueue.models import ProduceRecord, TopicCreate
from goqueue_harness.binaries import BinDir
from goqueue_harness.pytest_plugin import KubeletHandle
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

# The last commit before this release changed the chart (Raft password as a file, TLS and auth values).
PREVIOUS = "97ca413ffa3234c041d89fc38e2a0cfcf6038dc0"
TOPIC = "upgraded"
ROLL_TIMEOUT_S = 420.0


def previous_chart(destination: Path) -> Path:
    """charts/goqueue (and the observability files it links to) as of PREVIOUS, from this repository's history."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", PREVIOUS, "charts/goqueue",
                              "deploy/observability"], capture_output=True, check=True, timeout=60).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(destination, filter="tar")
    return destination / "charts" / "goqueue"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, k8s_binaries: BinDir, kubeconfig: Path,
            kube_api: k8s.ApiClient, kubelet: KubeletHandle) -> Iterator[Release]:
    chart = previous_chart(tmp_path_factory.mktemp("previous-chart"))
    with install_release("chart-upgrade", k8s_binaries, kubeconfig, kube_api, kubelet, chart=chart) as installed:
        yield installed


class RollingProducer(threading.Thread):
    """acks=all batches to whichever brokers are Ready now (pod IPs change as pods are replaced)."""

    def __init__(self, release: Release, history: History) -> None:
        super().__init__(daemon=True)
        self.release, self.history = release, history
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            servers = [f"http://{p.status.pod_ip}:8080" for p in self.release.pods()
                       if p.status.pod_ip and p.metadata.name != f"{RELEASE}-test"]
            values = [f"upgrade-{n + i}" for i in range(10)]
            try:
                with GoQueueClient(servers, timeout_s=5, delivery_timeout_s=60) as client:
                    response = client.produce(TOPIC, [ProduceRecord(value=v) for v in values], acks="all")
            except (GoQueueError, httpx.HTTPError) as exc:
                self.history.errors.append(repr(exc))
                time.sleep(0.2)
                continue
            self.history.record([o.model_dump() for o in response.offsets], values)
            n += 10


@pytest.mark.timeout(ROLL_TIMEOUT_S + 180)
def test_upgrading_from_the_previous_chart_rolls_one_broker_at_a_time_and_loses_nothing(release: Release) -> None:
    password = release.raft_password()
    statefulset = release.apps.read_namespaced_stateful_set("goqueue", release.namespace)
    before_revision = statefulset.status.current_revision
    with GoQueueClient(release.url(0)) as client:
        client.create_topic(TopicCreate(name=TOPIC, partitions=3, replication_factor=3))
    history = History()
    producer = RollingProducer(release, history)
    producer.start()
    wait_until(lambda: history.count() >= 50, 60, message="records acknowledged before the upgrade")

    # One broker at a time: pods being replaced (gone, terminating, or new and not Ready yet) never exceed one.
    # (Counting Ready pods instead would also count a probe that timed out on a loaded machine.)
    initial = {p.metadata.uid for p in release.pods() if p.metadata.name != f"{RELEASE}-test"}
    most_replacing = [0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            pods = [p for p in release.pods() if p.metadata.name != f"{RELEASE}-test"]
            replacing = BROKERS - len(pods) + sum(
                1 for p in pods if p.metadata.deletion_timestamp is not None or (
                    p.metadata.uid not in initial and not any(
                        c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])))
            most_replacing[0] = max(most_replacing[0], replacing)
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # --reset-then-reuse-values: this chart's defaults under the values the user gave. Plain --reuse-values would
        # keep the previous chart's defaults, which name keys this chart moved (docs/RUNBOOK.md, upgrading the chart).
        release.helm_run("upgrade", RELEASE, str(CHART), "--reset-then-reuse-values")
        revision = wait_until(lambda: release.revision_after(before_revision), 30, message="a new revision")
        release.wait_all_ready(revision=revision, timeout_s=ROLL_TIMEOUT_S)
        acknowledged = history.count()
        wait_until(lambda: history.count() >= acknowledged + 50, 90, message="records acknowledged after the roll")
    finally:
        producer.stopping.set()
        producer.join(90)
        sampling.set()
        sampler.join(5)

    assert release.raft_password() == password
    assert most_replacing[0] == 1, f"{most_replacing[0]} brokers were being replaced at once (0: no roll seen)"
    pods = {p.metadata.name: p for p in release.pods()}
    volumes = {v.name for v in pods["goqueue-0"].spec.volumes}
    assert "cluster-password" in volumes  # the new chart's pods: the password from a file
    with httpx.Client(base_url=release.url(0), timeout=30) as http:
        consumed = consume_all(http, TOPIC, 3)
    history.check(consumed)
    assert history.count() >= 100
