"""charts/goqueue installed with the runbook's command on the harness's real control plane (real API server,
StatefulSet and disruption controllers, the process-kubelet running `goqueue-broker` processes on pod IPs).

One release per module, as an operator would have it: install, the brokers form their Raft quorum and become Ready,
the runbook's and NOTES' first commands work against a broker, an upgrade that changes the settings rolls the brokers
with the same Raft password and keeps the data, and an uninstall keeps the claims.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from chart_release import BROKERS, CHART, RELEASE, Release

from goqueue.models import ClusterStatus, TopicInfo
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

ROLL_TIMEOUT_S = 180.0  # about 25 s here; PySyncObj caching a restarted peer's old IP makes it 600 s
KUBECTL_EXEC = re.compile(r"^\s*kubectl exec -n \S+ (?P<pod>\S+) -- (?P<command>goqueue-(cli|admin) .*)$")


def test_three_brokers_become_ready_with_the_runbooks_names(release: Release) -> None:
    sts = release.apps.read_namespaced_stateful_set("goqueue", release.namespace)
    assert sts.status.ready_replicas == BROKERS
    claims = {c.metadata.name: c for c in release.core.list_namespaced_persistent_volume_claim(release.namespace).items}
    assert sorted(claims) == [f"goqueue-data-goqueue-{i}" for i in range(BROKERS)]
    for claim in claims.values():
        assert claim.status.phase == "Bound"
        assert claim.spec.resources.requests["storage"] == "100Gi"
    # The disruption controller agrees: one broker of three may be evicted, not two.
    pdb = wait_until(lambda: _pdb_settled(release), 60, message="PDB status")
    assert pdb.status.expected_pods == BROKERS
    assert pdb.status.disruptions_allowed == 1
    services = {s.metadata.name for s in release.core.list_namespaced_service(release.namespace).items}
    assert services == {"goqueue", "goqueue-headless", "goqueue-metrics"}


def _pdb_settled(release: Release) -> Any:
    pdb = release.policy.read_namespaced_pod_disruption_budget("goqueue", release.namespace)
    return pdb if pdb.status and pdb.status.current_healthy == BROKERS else None


def test_the_runbooks_first_commands_work(release: Release) -> None:
    """The brief's check, as an operator would type it against a broker's pod IP."""
    release.cli("topic", "create", "--name", "my-topic", "--partitions", "8", "--replication-factor", "3")
    status = ClusterStatus.model_validate_json(release.cli("-o", "json", "cluster", "status", tool="goqueue-admin"))
    assert status.mode == "cluster"
    assert status.healthy
    assert status.brokers == BROKERS
    assert status.live_brokers == BROKERS
    assert sorted(m.broker_id for m in status.members) == list(range(BROKERS))
    # Each broker advertises its StatefulSet DNS name, and its id is its pod's ordinal.
    assert {m.host for m in status.members} == {
        f"goqueue-{i}.goqueue-headless.{release.namespace}.svc.cluster.local" for i in range(BROKERS)}
    topic = TopicInfo.model_validate_json(release.cli("-o", "json", "topic", "describe", "my-topic", ordinal=2))
    assert topic.partitions == 8
    assert all(len(p.replicas) == 3 for p in topic.partition_details)


def test_the_commands_notes_prints_work(release: Release) -> None:
    commands = [m for line in release.install_output.splitlines() if (m := KUBECTL_EXEC.match(line))]
    assert {m["command"].split()[1] for m in commands} >= {"cluster", "topic", "produce", "consume"}
    for match in commands:
        ordinal = int(match["pod"].rpartition("-")[2])
        tool, *args = match["command"].replace("my-topic", "notes-topic").split()
        release.cli(*args, tool=tool, ordinal=ordinal)
    assert "kubectl port-forward -n " + release.namespace + " svc/goqueue-metrics 9000:9000" in release.install_output


def test_every_broker_serves_metrics_on_the_port_the_metrics_service_targets(release: Release) -> None:
    service = release.core.read_namespaced_service("goqueue-metrics", release.namespace)
    (port,) = service.spec.ports
    assert (port.port, port.target_port) == (9000, "http")
    for i in range(BROKERS):
        pod = release.core.read_namespaced_pod(f"goqueue-{i}", release.namespace)
        http = {p.name: p.container_port for p in pod.spec.containers[0].ports}["http"]
        text = httpx.get(f"http://{pod.status.pod_ip}:{http}/metrics", timeout=10).text
        assert "goqueue_broker_ready 1.0" in text
        assert "goqueue_cluster_brokers_alive" in text


@pytest.mark.timeout(ROLL_TIMEOUT_S + 120)
def test_an_upgrade_rolls_the_brokers_with_the_same_password_and_keeps_the_data(release: Release) -> None:
    password = release.raft_password()
    before = release.apps.read_namespaced_stateful_set("goqueue", release.namespace).status.current_revision
    release.cli("produce", "--topic", "my-topic", "--key", "k", "--value", "before the upgrade")

    release.helm_run("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "config.retention.maxAge=72h")

    assert release.raft_password() == password  # looked up, never rotated
    config = release.core.read_namespaced_config_map("goqueue-config", release.namespace).data["goqueue.yaml"]
    assert "maxAge: 72h" in config
    revision = wait_until(lambda: release.revision_after(before), 30, message="a new StatefulSet revision")
    release.wait_all_ready(revision=revision, timeout_s=ROLL_TIMEOUT_S)
    # Ready pods are not yet a healthy cluster: the last restarted broker's followers rejoin the ISR a moment
    # later, and `cluster status` exits 1 until they have (the runbook's health gate).
    status = wait_until(lambda: _healthy_status(release), 60, message="cluster status healthy after the roll")
    assert status.live_brokers == BROKERS
    topic = TopicInfo.model_validate_json(release.cli("-o", "json", "topic", "describe", "my-topic"))
    assert sum(p.high_watermark for p in topic.partition_details) >= 1  # the record produced before the roll
    release.cli("produce", "--topic", "my-topic", "--key", "k", "--value", "after the upgrade")


def _healthy_status(release: Release) -> ClusterStatus | None:
    try:
        status = ClusterStatus.model_validate_json(release.cli("-o", "json", "cluster", "status", tool="goqueue-admin"))
    except AssertionError:  # exit 1: not healthy yet
        return None
    return status if status.healthy else None


def test_uninstall_keeps_every_brokers_data(release: Release) -> None:
    release.helm_run("uninstall", RELEASE, "--wait", "--timeout", "120s")
    wait_until(lambda: not release.pods(), 120, message="broker pods to stop")
    claims = sorted(c.metadata.name for c in release.core.list_namespaced_persistent_volume_claim(
        release.namespace).items)
    assert claims == [f"goqueue-data-goqueue-{i}" for i in range(BROKERS)]
    history = json.loads(release.helm_run("list", "--all", "-o", "json"))
    assert history == []
