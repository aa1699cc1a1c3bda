"""The operator's admin questions and actions, answered for the whole cluster from the metadata by any broker:
is a restart safe, is a broker caught up, move leadership or replicas off a broker, spread leadership evenly.

The plans are pure functions (`replication/controller.py`, `replication/metadata.py`); this module feeds them the
live metadata and liveness, and proposes what they return.
"""

from __future__ import annotations

from goqueue.cluster.membership import ClusterMembership
from goqueue.cluster.topics import TopicRegistry
from goqueue.config import Settings
from goqueue.errors import BrokerNotFound
from goqueue.replication.controller import controlled_shutdown_plan, drain_plan, rebalance_plan
from goqueue.replication.metadata import restart_would_break


class ClusterAdmin:
    def __init__(self, settings: Settings, membership: ClusterMembership, registry: TopicRegistry) -> None:
        self.settings = settings
        self.membership = membership
        self.registry = registry

    def _min_insync(self) -> dict[str, int]:
        default = self.settings.replication.min_insync_replicas
        return {name: min(meta.config.min_insync_replicas or default, meta.replication_factor)
                for name, meta in self.registry.topics.items()}

    def pre_restart_check(self, broker_id: int) -> list[str]:
        """Why restarting `broker_id` now would drop a partition below min.insync.replicas or lose the metadata
        quorum (empty: safe)."""
        self._check_known(broker_id)
        alive = self.membership.alive_brokers()
        state = self.membership.state
        quorum_size = max(len(state["brokers"]), len(self.membership.partner_addresses) + 1)
        return restart_would_break(state, broker_id, self._min_insync(), quorum_alive=len(alive),
                                   quorum_size=quorum_size)

    def caught_up(self, broker_id: int) -> list[str]:
        """Why `broker_id` is not yet fully back (empty: it is in the quorum and in every ISR it belongs to)."""
        self._check_known(broker_id)
        reasons = [] if broker_id in self.membership.alive_brokers() else [
            f"broker {broker_id} is not connected to the quorum"]
        for name, topic in sorted(self.membership.state["topics"].items()):
            for index, partition in sorted(topic["partition_state"].items()):
                if broker_id in partition["replicas"] and broker_id not in partition["isr"]:
                    reasons.append(f"{name}/{index}: not in ISR {partition['isr']}")
        return reasons

    def held(self, broker_id: int) -> tuple[int, int]:
        """(replicas, leaderships) `broker_id` holds."""
        replicas = leaders = 0
        for topic in self.membership.state["topics"].values():
            for partition in topic["partition_state"].values():
                replicas += broker_id in partition["replicas"]
                leaders += partition["leader"] == broker_id
        return replicas, leaders

    async def transfer_leadership(self, broker_id: int) -> list[str]:
        """Move every partition leadership off `broker_id` to a live in-sync replica; returns what could not move.

        Metadata (Raft) leadership is not transferable with PySyncObj: it moves by election when the broker
        restarts, which is why the operator restarts the metadata leader last.
        """
        self._check_known(broker_id)
        for command in controlled_shutdown_plan(self.membership.state, broker_id, self.membership.alive_brokers()):
            await self.membership.propose_quietly(command)
        return [f"{name}/{index}: no other live in-sync replica"
                for name, topic in sorted(self.membership.state["topics"].items())
                for index, partition in sorted(topic["partition_state"].items()) if partition["leader"] == broker_id]

    async def drain(self, broker_id: int) -> tuple[int, list[str]]:
        """Move leadership, then every replica, off `broker_id`; returns the replicas it still holds and why."""
        await self.transfer_leadership(broker_id)
        alive = self.membership.alive_brokers()
        for command in drain_plan(self.membership.state, broker_id, alive):
            await self.membership.propose_quietly(command)
        stuck = [f"{name}/{index}: every other live broker already holds a replica "
                 f"(replication factor {topic['replication_factor']}, {len(alive - {broker_id})} other live brokers)"
                 for name, topic in sorted(self.membership.state["topics"].items())
                 for index, partition in sorted(topic["partition_state"].items())
                 if broker_id in partition["replicas"] and set(alive) - {broker_id} <= set(partition["replicas"])]
        return self.held(broker_id)[0], stuck

    async def rebalance(self) -> int:
        plan = rebalance_plan(self.membership.state)
        for command in plan:
            await self.membership.propose_quietly(command)
        return len(plan)

    def _check_known(self, broker_id: int) -> None:
        if broker_id not in self.membership.state["brokers"]:
            raise BrokerNotFound(f"broker {broker_id} is not a member of this cluster "
                                 f"(members: {sorted(self.membership.state['brokers'])})")
