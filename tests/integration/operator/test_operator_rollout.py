"""The operator's roller on a real 3-broker cluster: a version change restarts each broker once, one at a time,
highest ordinal first and the metadata leader last, each after the broker's pre-restart check and the previous
one's caught-up check, while a producer writes with acks=all; every acknowledged message survives. The pause
annotations stop reconciliation and rolls."""

from __future__ import annotations

import time

import httpx
import pytest
from cluster_process import History, consume_all
from kubernetes import client as k8s
from operator_kube import (
    apply,
    cluster_manifest,
    condition,
    get,
    is_true,
    operator_credentials,
    session_headers,
    topic_manifest,
    wait_condition,
    wait_events,
)
from operator_process import OperatorProcess
from pod_producer import PodProducer

from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.integration

ROLL_S = 240


def pod_uids(kubectl: Kubectl, ns: str) -> dict[str, str]:
    found = {}
    for i in range(3):
        pod = get(kubectl, ns, "pod", f"goqueue-{i}")
        if pod is not None:
            found[pod["metadata"]["name"]] = pod["metadata"]["uid"]
    return found


def roll_steps(operator: OperatorProcess, offset: int, ns: str) -> list[tuple[str, str]]:
    """(reason, message) of the roll's Events in the order the operator emitted them (its log has microsecond
    order; Kubernetes Events only have seconds)."""
    return [(e["reason"], e["event_message"]) for e in operator.log_events(offset)
            if e.get("message") == "event" and e.get("object") == f"{ns}/goqueue"
            and e.get("reason") in ("BrokerRestarting", "LeadershipTransfer", "BrokerCaughtUp")]


def assert_roll_order(steps: list[tuple[str, str]], restarts: list[int], restarted: list[str]) -> int:
    """Highest ordinal first, the metadata leader last: each restart is of the highest ordinal still due that is not
    the metadata leader the operator saw at that step (named in its Event; restarts cause elections, so the planner
    reads it again before every step), and of the leader only when no other broker is due, after a
    LeadershipTransfer Event for it since the previous restart. Returns how many restarts were of the leader: at
    most one — none when leadership had moved by itself to a broker already restarted (seen in CI under load: the
    last broker due was then no longer the leader, and needed no transfer)."""
    due = {0, 1, 2}
    leader_restarts = 0
    for number, (position, name) in enumerate(zip(restarts, restarted, strict=True)):
        message = steps[position][1]
        leader = int(message.split("metadata leader: broker ")[1].split(";")[0].split(")")[0])
        ordinal = int(name.rsplit("-", 1)[1])
        expected = max(due - {leader}, default=leader)
        assert ordinal == expected, (f"restart {number + 1} was of {name}, not goqueue-{expected} (due "
                                     f"{sorted(due)}, metadata leader {leader}): {steps}")
        if ordinal == leader:
            leader_restarts += 1
            since = restarts[number - 1] if number else 0
            assert any(r == "LeadershipTransfer" and f"off {name}:" in m for r, m in steps[since:position]), (
                f"{name} was restarted while it led the metadata group, with no LeadershipTransfer before: {steps}")
            assert "its leadership was moved first" in message, message
        due.discard(ordinal)
    assert leader_restarts <= 1, f"the metadata leader was restarted more than once: {steps}"
    return leader_restarts


@pytest.mark.timeout(720)
def test_rolling_upgrade_under_acks_all_produce_loses_no_acknowledged_message(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns = kube_namespace
    log_offset = operator.log_size()
    apply(kubectl, ns, cluster_manifest())
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", 240)
    apply(kubectl, ns, topic_manifest("stream", partitions=3, replicationFactor=3,
                                      config={"minInsyncReplicas": 2}))
    wait_condition(kubectl, ns, "goqueuetopic", "stream", "Ready", 60)
    history = History()
    producer = PodProducer(k8s.CoreV1Api(kube_api), ns, "stream", history)
    producer.start()
    try:
        wait_until(lambda: history.count() >= 100, 60, message="100 acknowledged writes before the roll")
        before = pod_uids(kubectl, ns)
        acked_before = history.count()
        started = time.monotonic()
        apply(kubectl, ns, cluster_manifest(version="0.1.1"))

        def rolled() -> bool:
            cluster = get(kubectl, ns, "goqueuecluster", "goqueue")
            status = (cluster or {}).get("status", {})
            return (status.get("version") == "0.1.1" and is_true(cluster, "Ready")
                    and condition(cluster, "Upgrading").get("status") == "False")

        try:
            wait_until(rolled, ROLL_S, interval_s=1, message="every broker on 0.1.1, Ready, not Upgrading")
        except WaitTimeout as exc:
            cluster = get(kubectl, ns, "goqueuecluster", "goqueue")
            raise WaitTimeout(f"{exc}\nstatus: {(cluster or {}).get('status')}") from exc
        duration = time.monotonic() - started
        wait_until(lambda: history.count() >= acked_before + 100, 60, message="writes continue after the roll")
    finally:
        producer.stop()
    after = pod_uids(kubectl, ns)
    assert all(after[name] != uid for name, uid in before.items()), "a broker was not restarted"

    # One at a time, each broker once, each restart after the previous broker caught up.
    steps = roll_steps(operator, log_offset, ns)
    wait_events(kubectl, ns, "goqueue", *{r for r, _ in steps})
    restarted = [next(f"goqueue-{i}" for i in range(3) if f"goqueue-{i} " in m) for r, m in steps
                 if r == "BrokerRestarting"]
    assert sorted(restarted) == ["goqueue-0", "goqueue-1", "goqueue-2"], steps
    restarts = [i for i, (r, _) in enumerate(steps) if r == "BrokerRestarting"]
    for earlier, later, name in zip(restarts, restarts[1:], restarted, strict=False):
        assert any(r == "BrokerCaughtUp" and name in m for r, m in steps[earlier:later]), (
            f"{name} was not caught up before the next restart: {steps}")
    leader_restarts = assert_roll_order(steps, restarts, restarted)

    # No acknowledged write was lost.
    pods = [get(kubectl, ns, "pod", f"goqueue-{i}") for i in range(3)]
    url = f"http://{pods[0]['status']['podIP']}:8080"  # type: ignore[index]
    session = session_headers(url, operator_credentials(kubectl, ns))
    with httpx.Client(base_url=url, timeout=30, headers=session) as http:
        history.check(consume_all(http, "stream", 3))
    print(f"\nrolling upgrade of 3 brokers: {duration:.0f}s; {history.count()} acknowledged writes, "
          f"{producer.failures} refused or retried requests during the roll; the metadata leader restarted last after "
          f"a transfer: {'yes' if leader_restarts else 'no (leadership had moved to a restarted broker)'}")


def test_pause_annotation_stops_all_reconciliation(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str,
) -> None:
    ns = kube_namespace
    apply(kubectl, ns, cluster_manifest(replicas=1))
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", 240)
    kubectl("annotate", "goqueuecluster", "goqueue", "-n", ns, "goqueue.io/paused=true")
    paused = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Paused", 30)
    assert paused["status"]["phase"] == "Paused"
    assert paused["status"]["paused"] is True
    settings_file = get(kubectl, ns, "configmap", "goqueue-config")["data"]  # type: ignore[index]
    apply(kubectl, ns, cluster_manifest(replicas=1, config={"retention.maxAge": "1h"}))
    generation = get(kubectl, ns, "goqueuecluster", "goqueue")["metadata"]["generation"]  # type: ignore[index]
    # The operator has seen the new generation (status says so) and changed nothing.
    wait_until(lambda: get(kubectl, ns, "goqueuecluster", "goqueue")["status"]["observedGeneration"]  # type: ignore[index]
               == generation, 30, message="the paused cluster's new generation observed")
    assert get(kubectl, ns, "configmap", "goqueue-config")["data"] == settings_file  # type: ignore[index]
    kubectl("annotate", "goqueuecluster", "goqueue", "-n", ns, "goqueue.io/paused-")
    wait_until(lambda: "maxAge: 1h" in get(kubectl, ns, "configmap", "goqueue-config")["data"]["goqueue.yaml"],  # type: ignore[index]
               30, message="the change applied once unpaused")
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Paused", 30, status="False")


def test_rollout_pause_annotation_holds_restarts_until_removed(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str,
) -> None:
    """While paused the new revision is applied but no broker restarts; unpaused, the roll starts with the
    highest non-leader ordinal after its pre-restart check (completing it is the test above)."""
    ns = kube_namespace
    apply(kubectl, ns, cluster_manifest())
    ready = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", 240)
    leader = ready["status"]["leader"]
    before = pod_uids(kubectl, ns)
    kubectl("annotate", "goqueuecluster", "goqueue", "-n", ns, "goqueue.io/rollout-paused=true")
    apply(kubectl, ns, cluster_manifest(config={"retention.maxAge": "2h"}))
    held = wait_until(lambda: (c := get(kubectl, ns, "goqueuecluster", "goqueue")) is not None
                      and condition(c, "Upgrading").get("reason") == "RolloutPaused" and c, 30,
                      message="Upgrading, reason RolloutPaused")
    assert condition(held, "Upgrading")["status"] == "True"
    assert held["status"]["rollout"]["pending"][-1] == f"goqueue-{leader}"
    assert pod_uids(kubectl, ns) == before
    kubectl("annotate", "goqueuecluster", "goqueue", "-n", ns, "goqueue.io/rollout-paused-")
    first = max(i for i in range(3) if i != leader)
    wait_until(lambda: pod_uids(kubectl, ns).get(f"goqueue-{first}") not in (None, before[f"goqueue-{first}"]),
               120, message=f"goqueue-{first} restarted first once the roll is unpaused")
    assert pod_uids(kubectl, ns)[f"goqueue-{leader}"] == before[f"goqueue-{leader}"]
