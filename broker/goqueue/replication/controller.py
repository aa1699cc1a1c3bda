"""The controller's decisions: which partitions need a new leader, as pure planning over the metadata state.

The metadata Raft leader is the controller (one per cluster, as in KRaft). Every tick it plans with
`plan_leadership` and proposes the resulting commands; each is a compare-and-set on the leader epoch it saw, so a
plan made from a stale view is refused, never applied.

Rules:
* a partition whose leader is not alive gets the preferred live in-sync replica, and its ISR loses the dead
  brokers; with no live in-sync replica it goes offline (leader None) — an out-of-sync replica is elected only
  when the topic enables unclean election, because that loses acknowledged records;
* an offline partition gets a leader back as soon as one of its in-sync replicas returns;
* a partition led by anyone but its preferred replica (the first of its replica list, or of its target replicas
  while it moves) hands leadership back once the preferred one has been alive and in sync for
  `preferred_delay_s`, so leaders spread again after recovery.

Reassignments (`plan_reassignments`, KIP-455) advance here too: once every target replica of a moving partition
is in sync, leadership moves to a live target replica if the leader is leaving, then the move completes.
"""

from __future__ import annotations

from collections.abc import Mapping

from goqueue.replication import commands as cmds
from goqueue.replication.metadata import choose_new_leader
from goqueue.replication.reassignment import Goals, begin_commands, plan_moves, target_of
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
            return None if leader is None else cmds.elect_leader(topic, index, expected_epoch=epoch,
                                                                 expected_version=partition["version"], leader=None,
                                                                 isr=partition["isr"])
        isr = [b for b in partition["isr"] if b in alive]
        if new not in isr:
            isr = [new]  # unclean election: the new leader's log is the truth now
        return cmds.elect_leader(topic, index, expected_epoch=epoch, expected_version=partition["version"],
                                 leader=new, isr=isr)
    preferred = target_of(partition)[0]
    if (preferred != leader and preferred in alive and preferred in partition["isr"]
            and now_s - alive_since.get(preferred, now_s) >= preferred_delay_s):
        return cmds.elect_leader(topic, index, expected_epoch=epoch, expected_version=partition["version"],
                                 leader=preferred, isr=partition["isr"])
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
                                              expected_version=partition["version"],
                                              leader=min(others, key=lambda b: -ends.get(b, -1)), isr=others))
    return commands


def plan_reassignments(state: StateView, alive: set[int]) -> list[cmds.ElectLeader | cmds.CompleteReassignment]:
    """The next step of every partition being moved whose target replicas are all in sync: leadership to a live
    target replica when the leader is leaving, else the completion (the leaving replicas go)."""
    steps: list[cmds.ElectLeader | cmds.CompleteReassignment] = []
    for name, topic in state["topics"].items():
        for index, partition in topic["partition_state"].items():
            target = partition.get("target_replicas")
            if target is None or any(b not in partition["isr"] for b in target):
                continue
            leader = partition["leader"]
            if leader is None or leader in target:
                steps.append(cmds.complete_reassignment(name, int(index), expected_version=partition["version"]))
                continue
            successor = next((b for b in target if b in alive), None)
            if successor is not None:
                steps.append(cmds.elect_leader(name, int(index), expected_epoch=partition["leader_epoch"],
                                               expected_version=partition["version"], leader=successor,
                                               isr=partition["isr"]))
    return steps


def drain_plan(state: StateView, broker_id: int, alive: set[int]) -> list[cmds.BeginReassignment]:
    """Move every replica off `broker_id` to the live broker holding the fewest replicas (new zones first): the
    new replicas copy first, the drained one leaves last (`plan_reassignments`)."""
    return begin_commands(plan_moves(state, Goals(drain=frozenset({broker_id})), alive))


def rebalance_plan(state: StateView, alive: set[int] | None = None) -> list[cmds.BeginReassignment]:
    """Even replicas and preferred leaders across brokers and zones, moving as few replicas as it can."""
    return begin_commands(plan_moves(state, Goals(balance=True), alive))
