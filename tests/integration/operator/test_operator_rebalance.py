"""Replica reassignment through the operator on a real 3-broker cluster (issue 16): a GoQueueRebalance proposes,
waits for approval, executes and goes Ready with the replicas balanced; an operator SIGKILLed mid-move resumes
from the brokers' progress without planning or executing again; a proposal made stale behind its back is refused by
the brokers and proposed again; stop sends the moving partitions back; a broker SIGKILLed mid-copy under acks=all load
loses no acknowledged record and the ISR never drops below min.insync.replicas; a GoQueueTopic's
replicationFactor goes 1 → 3 → 2 and one above the broker count is refused with the reason.

Small data, and a throttle only where a move must last long enough to be interrupted (about 1 MiB at 128 KiB/s).
Topics moved by a GoQueueRebalance are created through the broker API: a GoQueueTopic would see another
replication factor as drift and change it back (docs/OPERATOR.md).
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cluster_process import History, consume_all
from conftest import RunningCluster
from kubernetes import client as k8s
from operator_kube import (
    API,
    JSON,
    apply,
    condition,
    events,
    get,
    session_headers,
    topic_manifest,
    wait_condition,
    wait_events,
)
from operator_process import OperatorProcess
from pod_producer import PodProducer

from goqueue.client.http import GoQueueClient
from goqueue.errors import GoQueueError
from goqueue.models import ReassignmentGoals, TopicConfig, TopicCreate
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

WAIT_S = 120.0
THROTTLE = 128 * 1024  # bytes/s: the ~1 MiB preload copies in ~8 s, long enough to interrupt
PRELOAD = 1000         # records of 1 KiB


def rebalance_manifest(name: str, **spec: Any) -> JSON:
    return {"apiVersion": API, "kind": "GoQueueRebalance", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": "goqueue"}, **spec}}


@pytest.fixture
def admin(goqueue_cluster: RunningCluster) -> Iterator[GoQueueClient]:
    with GoQueueClient(list(goqueue_cluster.broker_urls), timeout_s=10,
                       credentials=goqueue_cluster.credentials) as client:
        yield client


def phase_of(kubectl: Kubectl, ns: str, name: str) -> str | None:
    found = get(kubectl, ns, "goqueuerebalance", name)
    return ((found or {}).get("status") or {}).get("phase")


def wait_phase(kubectl: Kubectl, ns: str, name: str, phase: str, timeout_s: float = WAIT_S) -> JSON:
    def reached() -> JSON | None:
        found = get(kubectl, ns, "goqueuerebalance", name)
        return found if ((found or {}).get("status") or {}).get("phase") == phase else None

    try:
        found: JSON = wait_until(reached, timeout_s, interval_s=0.3, message=f"goqueuerebalance/{name} {phase}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstatus: {(get(kubectl, ns, 'goqueuerebalance', name) or {}).get('status')}"
                             ) from exc
    return found


def replicas(admin: GoQueueClient, topic: str) -> list[list[int]]:
    return [p.replicas for p in admin.describe_topic(topic).partition_details]


def replica_counts(admin: GoQueueClient) -> Counter[int]:
    counts: Counter[int] = Counter({0: 0, 1: 0, 2: 0})
    for topic in admin.list_topics(internal=True):
        for placed in replicas(admin, topic.name):
            counts.update(placed)
    return counts


def create_loaded_topic(admin: GoQueueClient, cluster: RunningCluster, name: str, rf: int, min_insync: int) -> None:
    admin.create_topic(TopicCreate(name=name, partitions=1, replication_factor=rf,
                                   config=TopicConfig(min_insync_replicas=min_insync)))
    url = cluster.broker_urls[0]
    with httpx.Client(base_url=url, timeout=30, headers=session_headers(url, cluster.credentials)) as http:
        for start in range(0, PRELOAD, 100):
            answer = http.post(f"/v1/topics/{name}/records",
                               json={"records": [{"value": f"pre-{start + i}:" + "x" * 1024} for i in range(100)]})
            assert answer.status_code == 200, answer.text
    wait_until(lambda: all(len(p.isr) == rf for p in admin.describe_topic(name).partition_details), 60,
               message=f"{name} preloaded and in sync")


def kill_broker(kubectl: Kubectl, ns: str, broker: int) -> int:
    """SIGKILL the broker's process (the process-kubelet restarts it, as a kubelet restarts a crashed container);
    returns the container's restart count before."""
    pod = get(kubectl, ns, "pod", f"goqueue-{broker}")
    assert pod is not None
    (status,) = pod["status"]["containerStatuses"]
    os.killpg(int(status["containerID"].removeprefix("process://")), signal.SIGKILL)
    return int(status["restartCount"])


class IsrSampler(threading.Thread):
    """The ISR sizes of a topic's partitions, read from the metadata every 50 ms until stopped."""

    def __init__(self, cluster: RunningCluster, topic: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.topic = cluster, topic
        self.stopping, self.sizes = threading.Event(), list[int]()

    def run(self) -> None:
        with GoQueueClient(list(self.cluster.broker_urls), timeout_s=5,
                           credentials=self.cluster.credentials) as client:
            while not self.stopping.wait(0.05):
                try:
                    partitions = client.describe_topic(self.topic).partition_details
                except GoQueueError:
                    continue  # the broker asked was the one killed: the next call tries another
                self.sizes.extend(len(p.isr) for p in partitions)


def test_a_proposal_waits_for_approval_then_executes_and_balances_the_replicas(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster, admin: GoQueueClient,
) -> None:
    ns = goqueue_cluster.namespace
    admin.create_topic(TopicCreate(name="skewed", partitions=4, replication_factor=1))
    # Skew it: every partition onto broker 0 (through the brokers' own reassignment, as an operator by hand would).
    plan = admin.plan_reassignment(ReassignmentGoals(drain_brokers=[1, 2]))
    assert admin.execute_reassignment([m for m in plan.moves if m.topic == "skewed"]).reasons == []
    wait_until(lambda: admin.reassignment_progress().done and replicas(admin, "skewed") == [[0]] * 4, 60,
               message="skewed onto broker 0")
    before = replica_counts(admin)
    assert max(before.values()) - min(before.values()) > 1, before

    apply(kubectl, ns, rebalance_manifest("spread", goals={"balance": True}))
    proposed = wait_phase(kubectl, ns, "spread", "ProposalReady")
    proposal = proposed["status"]["proposal"]
    assert proposal["moves"] == len(proposal["partitions"]) >= 2
    assert condition(proposed, "Ready")["reason"] == "AwaitingApproval"
    assert "goqueue.io/rebalance=approve" in condition(proposed, "Ready")["message"]
    wait_events(kubectl, ns, "spread", "ProposalReady")
    # Nothing moves until approved.
    assert admin.reassignment_progress().done
    assert replicas(admin, "skewed") == [[0]] * 4

    kubectl("annotate", "goqueuerebalance", "spread", "-n", ns, "goqueue.io/rebalance=approve")
    ready = wait_phase(kubectl, ns, "spread", "Ready")
    assert (condition(ready, "Ready")["status"], condition(ready, "Ready")["reason"]) == ("True", "RebalanceComplete")
    progress = ready["status"]["progress"]
    assert (progress["partitionsDone"], progress["summary"]) == (proposal["moves"], f"{proposal['moves']}/"
                                                                                   f"{proposal['moves']}")
    assert "goqueue.io/rebalance" not in (ready["metadata"].get("annotations") or {})  # acted on once, removed
    after = replica_counts(admin)
    assert max(after.values()) - min(after.values()) <= 1, after
    reasons = wait_events(kubectl, ns, "spread", "ProposalReady", "RebalanceStarted", "RebalanceComplete")
    assert not [e for e in events(kubectl, ns, "spread") if e["type"] == "Warning"], reasons


def test_an_operator_killed_mid_move_resumes_from_the_brokers_progress(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster, admin: GoQueueClient,
) -> None:
    ns = goqueue_cluster.namespace
    create_loaded_topic(admin, goqueue_cluster, "heavy", rf=1, min_insync=1)
    apply(kubectl, ns, rebalance_manifest("widen-heavy", goals={"replicationFactors": {"heavy": 2}},
                                          throttleBytesPerSecond=THROTTLE, approved=True))
    moving = wait_until(lambda: (r := get(kubectl, ns, "goqueuerebalance", "widen-heavy")) is not None
                        and ((r.get("status") or {}).get("progress") or {}).get("executed") and r, WAIT_S,
                        interval_s=0.2, message="executed")
    assert not admin.reassignment_progress().done, "the move finished before the operator could be killed"
    offset = operator.log_size()
    operator.crash_and_restart()

    ready = wait_phase(kubectl, ns, "widen-heavy", "Ready")
    # The same proposal, started once: no new plan, no second execution after the restart.
    assert ready["status"]["proposal"]["createdAt"] == moving["status"]["proposal"]["createdAt"]
    assert ready["status"]["progress"]["startedAt"] == moving["status"]["progress"]["startedAt"]
    resumed = [e.get("reason") for e in operator.log_events(offset)
               if e.get("message") == "event" and e.get("object") == f"{ns}/widen-heavy"]
    assert "RebalanceComplete" in resumed
    assert not {"RebalanceStarted", "ProposalReady"} & set(resumed), resumed
    assert [len(r) for r in replicas(admin, "heavy")] == [2]
    assert admin.describe_topic("heavy").replication_factor == 2


def test_a_stale_proposal_is_refused_by_the_brokers_and_proposed_again(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster, admin: GoQueueClient,
) -> None:
    """The partition changes between the proposal and its approval: the brokers refuse the move (its version is
    stale), the operator says so (StaleProposal, a Warning with the fix) and proposes again; approved, that runs."""
    ns = goqueue_cluster.namespace
    admin.create_topic(TopicCreate(name="drifting", partitions=1, replication_factor=1))
    apply(kubectl, ns, rebalance_manifest("widen-drifting", goals={"replicationFactors": {"drifting": 2}}))
    first = wait_phase(kubectl, ns, "widen-drifting", "ProposalReady")["status"]["proposal"]
    (placed,) = replicas(admin, "drifting")
    behind_its_back = admin.plan_reassignment(ReassignmentGoals(drain_brokers=placed))
    assert admin.execute_reassignment([m for m in behind_its_back.moves if m.topic == "drifting"]).started == 1
    wait_until(lambda: admin.reassignment_progress().done and replicas(admin, "drifting") != [placed], 60,
               message=f"drifting moved off broker {placed} behind the proposal's back")

    kubectl("annotate", "goqueuerebalance", "widen-drifting", "-n", ns, "goqueue.io/rebalance=approve")
    stale = wait_until(lambda: (r := get(kubectl, ns, "goqueuerebalance", "widen-drifting")) is not None
                       and condition(r, "Ready").get("reason") == "StaleProposal" and r, WAIT_S, interval_s=0.3,
                       message="StaleProposal")
    assert stale["status"]["phase"] == "ProposalReady"
    assert stale["status"]["proposal"]["partitions"][0]["version"] > first["partitions"][0]["version"]
    assert "refused or sent back" in condition(stale, "Ready")["message"]
    wait_events(kubectl, ns, "widen-drifting", "StaleProposal")
    (warning,) = [e for e in events(kubectl, ns, "widen-drifting") if e["reason"] == "StaleProposal"]
    assert warning["type"] == "Warning"
    assert "Fix: partitions changed since the proposal" in warning["message"]
    assert admin.reassignment_progress().done  # the new proposal waits for its own approval

    kubectl("annotate", "goqueuerebalance", "widen-drifting", "-n", ns, "goqueue.io/rebalance=approve")
    wait_phase(kubectl, ns, "widen-drifting", "Ready")
    assert [len(r) for r in replicas(admin, "drifting")] == [2]


def test_stop_sends_the_moving_partitions_back(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster, admin: GoQueueClient,
) -> None:
    ns = goqueue_cluster.namespace
    create_loaded_topic(admin, goqueue_cluster, "halted", rf=1, min_insync=1)
    (before,) = replicas(admin, "halted")
    apply(kubectl, ns, rebalance_manifest("widen-halted", goals={"replicationFactors": {"halted": 3}},
                                          throttleBytesPerSecond=THROTTLE // 2, approved=True))
    wait_until(lambda: (r := get(kubectl, ns, "goqueuerebalance", "widen-halted")) is not None
               and ((r.get("status") or {}).get("progress") or {}).get("executed"), WAIT_S, interval_s=0.2,
               message="executed")
    assert not admin.reassignment_progress().done, "the move finished before it could be stopped"
    kubectl("annotate", "goqueuerebalance", "widen-halted", "-n", ns, "goqueue.io/rebalance=stop")
    stopped = wait_phase(kubectl, ns, "widen-halted", "Stopped")
    assert condition(stopped, "Ready")["reason"] == "Stopped"
    assert "1 moving partitions sent back" in condition(stopped, "Ready")["message"]
    assert "goqueue.io/rebalance" not in (stopped["metadata"].get("annotations") or {})
    wait_until(lambda: admin.reassignment_progress().done, 30, message="nothing moves after the stop")
    assert replicas(admin, "halted") == [before]
    assert admin.reassignment_progress().throttle is None  # gone with the last move
    wait_events(kubectl, ns, "widen-halted", "RebalanceStopped")


def test_a_broker_killed_mid_copy_under_acks_all_load_loses_nothing_and_min_isr_holds(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, goqueue_cluster: RunningCluster,
    admin: GoQueueClient,
) -> None:
    ns = goqueue_cluster.namespace
    create_loaded_topic(admin, goqueue_cluster, "stream", rf=2, min_insync=2)
    history = History()
    producer = PodProducer(k8s.CoreV1Api(kube_api), ns, "stream", history)
    sampler = IsrSampler(goqueue_cluster, "stream")
    producer.start()
    sampler.start()
    try:
        wait_until(lambda: history.count() >= 100, 60, message="acks=all load flowing")
        apply(kubectl, ns, rebalance_manifest("widen-stream", goals={"replicationFactors": {"stream": 3}},
                                              throttleBytesPerSecond=THROTTLE, approved=True))
        wait_phase(kubectl, ns, "widen-stream", "Rebalancing")
        copying = wait_until(lambda: next((p.copying for p in admin.reassignment_progress().partitions
                                           if p.topic == "stream" and p.copying), None), 30,
                             interval_s=0.1, message="the new replica copying")
        (added,) = copying
        restarts = kill_broker(kubectl, ns, added)
        before = history.count()
        wait_until(lambda: history.count() >= before + 100, WAIT_S, message="acks=all writes go on without it")
        wait_until(lambda: (p := get(kubectl, ns, "pod", f"goqueue-{added}")) is not None
                   and p["status"]["containerStatuses"][0]["restartCount"] > restarts, 60,
                   message=f"goqueue-{added} restarted")
        wait_phase(kubectl, ns, "widen-stream", "Ready")
        after = history.count()
        wait_until(lambda: history.count() >= after + 50, WAIT_S, message="writes continue after the move")
    finally:
        producer.stop()
        sampler.stopping.set()
        sampler.join(10)
    assert [len(r) for r in replicas(admin, "stream")] == [3]
    assert sampler.sizes, "the ISR was never sampled"
    assert min(sampler.sizes) >= 2, f"the ISR fell below min.insync.replicas 2: {Counter(sampler.sizes)}"
    url = goqueue_cluster.broker_urls[0]
    with httpx.Client(base_url=url, timeout=30, headers=session_headers(url, goqueue_cluster.credentials)) as http:
        history.check(consume_all(http, "stream", 1))
    print(f"\nbroker {added} SIGKILLed mid-copy: {history.count()} acknowledged writes, none lost; "
          f"{producer.failures} refused or retried requests; ISR sizes sampled {dict(Counter(sampler.sizes))}")


def test_a_topics_replication_factor_changes_up_and_down(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster, admin: GoQueueClient,
) -> None:
    ns = goqueue_cluster.namespace

    def factor_is(n: int) -> JSON | None:
        found = get(kubectl, ns, "goqueuetopic", "widen")
        status = (found or {}).get("status") or {}
        return found if (status.get("replicationFactor") == n and condition(found, "Ready").get("status") == "True"
                         and "reassignment" not in status) else None

    apply(kubectl, ns, topic_manifest("widen", partitions=2, replicationFactor=1))
    wait_condition(kubectl, ns, "goqueuetopic", "widen", "Ready", 60)
    for factor in (3, 2):
        apply(kubectl, ns, topic_manifest("widen", partitions=2, replicationFactor=factor))
        wait_until(lambda wanted=factor: factor_is(wanted), WAIT_S, interval_s=0.3,
                   message=f"status.replicationFactor {factor}, Ready")
        assert [len(r) for r in replicas(admin, "widen")] == [factor, factor]
    assert "ReplicationFactorChanging" in wait_events(kubectl, ns, "widen", "ReplicationFactorChanging")
    assert not [e for e in events(kubectl, ns, "widen") if e["type"] == "Warning"]

    apply(kubectl, ns, topic_manifest("widen", partitions=2, replicationFactor=5))
    refused = wait_condition(kubectl, ns, "goqueuetopic", "widen", "Ready", 60, status="False")
    assert condition(refused, "Ready")["reason"] == "RejectedByBroker"
    assert "replication factor 5 for 'widen' needs 1..3 brokers" in condition(refused, "Ready")["message"]
    assert refused["status"]["replicationFactor"] == 2
