"""One partition replica held by this broker: its log, its role, and what the role needs.

Roles follow the metadata: LEADER (appends producer batches stamped with `leader_epoch`, tracks followers,
owns the high watermark) or FOLLOWER (fetches from `leader_id`, truncates to the leader's epoch boundary first).
A replica whose partition has no leader is OFFLINE. Role changes come only from metadata (`apply_metadata`),
never from local guesses, so two brokers never both act as leader of one epoch.

Everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum

from goqueue.replication.epochs import EpochCache
from goqueue.replication.isr import FollowerProgress, high_watermark
from goqueue.replication.view import PartitionView
from goqueue.storage.log import PartitionLog


class Role(StrEnum):
    LEADER = "leader"
    FOLLOWER = "follower"
    OFFLINE = "offline"


class Partition:
    def __init__(self, topic: str, index: int, partition_log: PartitionLog, broker_id: int) -> None:
        self.topic = topic
        self.index = index
        self.log = partition_log
        self.broker_id = broker_id
        self.grown = asyncio.Event()
        self.role = Role.OFFLINE
        self.leader_id: int | None = None
        self.leader_epoch = -1
        self.replicas: list[int] = [broker_id]
        self.isr: list[int] = [broker_id]
        self.version = 0
        self.epochs = EpochCache(partition_log.directory)
        self.followers: dict[int, FollowerProgress] = {}
        self.needs_truncation = False
        self.isr_change_pending = False
        self.proposed_isr: list[int] = []  # the ISR change pending, if any: the high watermark counts its members too
        self.epoch_start_offset = 0  # this broker's log end when it became leader of the current epoch
        self.settle_waived = False  # a read waited the longest once this epoch: later reads do not wait again

    def notify(self) -> None:
        """Wake everyone waiting for this partition to change (long-polls, acks=all, follower fetches)."""
        self.grown.set()
        self.grown = asyncio.Event()

    async def wait_changed(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: see replication/raft.py
                await self.grown.wait()
        except TimeoutError:
            return False
        return True

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def apply_metadata(self, state: PartitionView, now_s: float | None = None) -> bool:
        """Adopt the partition state from metadata; True when the role or epoch changed (a transition)."""
        now_s = time.monotonic() if now_s is None else now_s
        leader, epoch = state["leader"], state["leader_epoch"]
        if leader == self.broker_id and (leader, epoch) != (self.leader_id, self.leader_epoch):
            # First, before anything is adopted: an epoch the leader cannot write down (a full volume: OSError)
            # would be forgotten by a restart, and followers' truncation relies on it. The caller retries later,
            # with this partition exactly as it was.
            self.epochs.assign(epoch, self.log.log_end_offset)
        previous_isr = self.isr
        self.replicas, self.isr, self.version = list(state["replicas"]), list(state["isr"]), state["version"]
        self.isr_change_pending, self.proposed_isr = False, []
        for broker in previous_isr:
            if broker not in self.isr and broker in self.followers:
                # Out of the ISR (lagging, or it lost its copy and left): only a fetch made from now on may bring
                # it back, never what it had before — it may have restarted with less.
                self.followers[broker] = FollowerProgress()
        for broker in [b for b in self.followers if b not in self.replicas]:
            del self.followers[broker]  # no longer a replica (a move completed or was cancelled): nothing waits for it
        if leader == self.leader_id and epoch == self.leader_epoch:
            if self.advance_high_watermark():  # a shrink, or a joiner gone, may let it move now, not at the next fetch
                self.notify()
            return False
        self.leader_id, self.leader_epoch = leader, epoch
        if leader == self.broker_id:
            self.role = Role.LEADER
            self.epoch_start_offset = self.log.log_end_offset
            self.settle_waived = False
            # Followers start "caught up now": they get replicaLagMax to show progress before leaving the ISR.
            self.followers = {b: FollowerProgress(0, now_s, now_s) for b in self.replicas if b != self.broker_id}
            self.needs_truncation = False
        elif leader is None:
            self.role = Role.OFFLINE
        else:
            self.role = Role.FOLLOWER
            self.followers = {}
            self.needs_truncation = True
        self.notify()
        return True

    @property
    def high_watermark_settled(self) -> bool:
        """A new leader's high watermark starts where it last heard it as a follower, which may be short of what the
        previous leader had acknowledged; it has caught up once it covers every record this leader held when
        elected (Kafka's KIP-207 rule for a new leader's offsets). Its followers' first fetches settle it; a follower
        in the ISR that does not fetch (stopped, cut off) holds it until it leaves the ISR, so once a read has waited
        the longest in an epoch (`settle_waived`) reads go on from the high watermark as it stands."""
        return self.settle_waived or self.log.high_watermark >= self.epoch_start_offset

    def join_offset(self, broker: int) -> int | None:
        """Where a follower's fetch must start for it to join the ISR (`replication/isr.py`): the high watermark, and
        no less than this leader's log end when it was elected (Kafka's rule: records the previous leader may have
        acknowledged lie below it). None for an in-sync replica, or a broker that is not a replica."""
        if broker in self.isr or broker not in self.replicas:
            return None
        return max(self.log.high_watermark, self.epoch_start_offset)

    def advance_high_watermark(self) -> bool:
        """Leader: the high watermark is the smallest durable log end among in-sync replicas, the members of an ISR
        change pending and joining followers (`replication/isr.py`); it never goes back."""
        if not self.is_leader:
            return False
        counted = self.isr if not self.proposed_isr else [*self.isr, *self.proposed_isr]
        hwm = high_watermark(self.broker_id, self.log.flushed_offset, counted, self.followers)
        if hwm > self.log.high_watermark:
            self.log.high_watermark = min(hwm, self.log.log_end_offset)
            return True
        return False
