"""The controller's decisions: which partitions need a new leader, as pure planning over the metadata state.

The metadata Raft leader is the controller (one per cluster, as in KRaft). Every tick it plans with
`plan_leadership` and proposes the resulting commands; each is a compare-and-set on the leader epoch it saw, so a
plan made from a stale view is refused, never applied.

Rules:
* a partition whose leader is not alive gets the preferred live in-sync replica, and its ISR loses the dead
  brokers; with no live in-sync replica it goes offline (leader None) — an out-of-sync replica is elected only
  when the topic enables unclean election, because that loses acknowledged records;
* an offline partition gets a leader back as soon as one of its in-sync replicas returns;
* a partition led by anyone but its preferred replica (the first of its replica list) hands leadership back once
  the preferred one has been alive and in sync for `preferred_delay_s`, so leaders spread again after recovery.
"""

from __future__ import annotations

from collections.abc import Mapping

from goqueue.replication import commands as cmds
from goqueue.replication.metadata import assign_replicas, choose_new_leader
from goqueue.replication.view import PartitionView, StateView


def plan_leadership(state: StateView, alive: set[int], alive_since: Mapping[int, float], now_s: float,
                    preferred_delay_s: float) -> list[cmds.ElectLeader]:
    commands: list[cmds.ElectLeader] = []
    for name, topic in state["topics"].items():
        unclean = bool(topic["config"].get("uncleanLeaderElection", False))
        for index, partition in topic["partition_state"].items():
            command = _plan_partition(name, int(index), partition, alive, alive_since, now_s, preferred_delay_s,
                                      unclean)
            if command is not None:
                commands.append(command)
    return commands


def _plan_partition(topic: str, index: int, partition: PartitionView, alive: set[int],
                    alive_since: Mapping[int, float], now_s: float, preferred_delay_s: float,
                    unclean: bool) -> cmds.ElectLeader | None:
    leader = partition["leader"]
    epoch = partition["leader_epoch"]
    if leader is None or leader not in alive:
        new = choose_new_leader(partition, alive, unclean)
        if new is None:
            return None if leader is None else cmds.elect_leader(topic, index, expected_epoch=epoch, leader=None,
                                                                 isr=partition["isr"])
        isr = [b for b in partition["isr"] if b in alive]
        if new not in isr:
            isr = [new]  # unclean election: the new leader's log is the truth now
        return cmds.elect_leader(topic, index, expected_epoch=epoch, leader=new, isr=isr)
    preferred = partition["replicas"][0]
    if (preferred != leader and preferred in alive and preferred in partition["isr"]
            and now_s - alive_since.get(preferred, now_s) >= preferred_delay_s):
        return cmds.elect_leader(topic, index, expected_epoch=epoch, leader=preferred, isr=partition["isr"])
    return None


def controlled_shutdown_plan(state: StateView, broker_id: int, alive: set[int],
                             follower_ends: Mapping[tuple[str, int], Mapping[int, int]] | None = None
                             ) -> list[cmds.ElectLeader]:
    """Move leadership off a broker that is about to stop: to another live in-sync replica, ISR without it.

    `follower_ends` is what the stopping leader saw its followers fetch (their log ends): the furthest follower
    gets leadership, so the new leader's high watermark and consumers lose no time catching up."""
    commands: list[cmds.ElectLeader] = []
    for name, topic in state["topics"].items():
        for index, partition in topic["partition_state"].items():
            if partition["leader"] != broker_id:
                continue
            ends = (follower_ends or {}).get((name, int(index)), {})
            others = [b for b in partition["isr"] if b != broker_id and b in alive]
            if not others:
                continue  # nowhere to go: the partition stays here until the broker stops, then goes offline
            commands.append(cmds.elect_leader(name, int(index), expected_epoch=partition["leader_epoch"],
                                              leader=min(others, key=lambda b: -ends.get(b, -1)), isr=others))
    return commands


def drain_plan(state: StateView, broker_id: int, alive: set[int]) -> list[cmds.Reassign]:
    """Replace `broker_id` in every replica list by the live broker holding the fewest replicas (leaders first
    move away through `controlled_shutdown_plan`)."""
    load: dict[int, int] = {b: 0 for b in alive if b != broker_id}
    for topic in state["topics"].values():
        for partition in topic["partition_state"].values():
            for replica in partition["replicas"]:
                if replica in load:
                    load[replica] += 1
    commands: list[cmds.Reassign] = []
    for name, topic in state["topics"].items():
        for index, partition in topic["partition_state"].items():
            if broker_id not in partition["replicas"] or partition["leader"] == broker_id:
                continue
            candidates = sorted((n, b) for b, n in load.items() if b not in partition["replicas"])
            if not candidates:
                continue
            target = candidates[0][1]
            load[target] += 1
            replicas = [target if r == broker_id else r for r in partition["replicas"]]
            commands.append(cmds.reassign(name, int(index), replicas=replicas, expected_version=partition["version"]))
    return commands


def rebalance_plan(state: StateView) -> list[cmds.Reassign]:
    """Reassign every partition whose replicas differ from a fresh spread over all registered brokers."""
    commands: list[cmds.Reassign] = []
    for name, topic in state["topics"].items():
        count = topic["partitions"]
        target = assign_replicas(state["brokers"], range(count), topic["replication_factor"])
        for index, partition in topic["partition_state"].items():
            wanted = target[int(index)]
            if sorted(wanted) == sorted(partition["replicas"]):
                continue
            leader = partition["leader"]
            if leader is not None and leader not in wanted:
                wanted = [leader, *[b for b in wanted if b != leader]][:len(wanted)]
            commands.append(cmds.reassign(name, int(index), replicas=wanted, expected_version=partition["version"]))
    return commands
