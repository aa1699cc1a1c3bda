"""`ConsumerHost`: everything the consumer-group code needs from the broker it runs in, and nothing more.

The coordinator is a guest of the broker: it reads and writes records like any client, owns the log of the
`__consumer_state` partitions while this broker leads them, and reads a little cluster metadata. This module says
exactly which of the broker's powers that takes, as `typing.Protocol`s of plain values, so the consumer package
imports nothing of the broker core (`goqueue.broker`, `cluster`, `partition`, `topics`). The broker's side is
`goqueue.consumer_host.BrokerConsumerHost`; unit tests use an in-memory one (tests/unit/consumer_host_double.py).

The protocol is cut in the roles the parts of the coordinator use, each taking the narrowest it can:

* `TopicLookup` — which topics exist, with how many partitions and which settings; creating the state topic and
  dead-letter topics, and what a metadata restore creates or grows.
* `Records` — produce, fetch and offsets of user partitions *wherever they are led* (the host forwards them to the
  leader once), and the broker's caps on a fetch.
* `StatePartitions` — the fenced local append to a state partition this broker leads, this broker's own replica of
  one (for replay and for long-poll wake-ups), and role changes of local replicas as `RoleChange` values.
* `ClusterView` — this broker's id, the size of the cluster, who leads which partition, and the cluster-wide
  pause-all flag (read, and set by one metadata command).
* `Peers` — how to reach another broker's public API (a coordinator elsewhere).

`ConsumerHost` is all of them plus the metrics registry the consumer gauges are registered in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from prometheus_client import CollectorRegistry

from goqueue.consumers.offsets import PartitionBounds
from goqueue.models import TopicConfig, TopicCreate


@dataclass(frozen=True, slots=True)
class RoleChange:
    """A local replica's role after a change: whether this broker leads it, at which leader epoch. Told after every
    role or leader-epoch change, and when the replica is dropped (`is_leader` False)."""

    topic: str
    index: int
    is_leader: bool
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class Leadership:
    """Who leads a partition according to the cluster metadata (`leader` None: nobody can right now)."""

    leader: int | None
    leader_epoch: int


class OutgoingRecord(NamedTuple):
    """A record the coordinator writes: a state record, or the copy of a message sent to its dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int | None = None  # None: the time of the write


class TopicFacts(Protocol):
    """What the coordinator reads of a topic."""

    @property
    def name(self) -> str: ...

    @property
    def partitions(self) -> int: ...

    @property
    def replication_factor(self) -> int: ...

    @property
    def config(self) -> TopicConfig: ...


class Fetched(Protocol):
    """Whole record batches below the leader's high watermark, as `storage.batch` encodes them."""

    @property
    def data(self) -> bytes: ...

    @property
    def high_watermark(self) -> int: ...


class LocalReplica(Protocol):
    """This broker's own replica of a partition (leader or follower)."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_epoch(self) -> int: ...

    @property
    def log_start_offset(self) -> int: ...

    @property
    def high_watermark(self) -> int: ...

    @property
    def log_end_offset(self) -> int: ...

    def read(self, offset: int, max_bytes: int, upto: int | None = None) -> bytes:
        """Whole batches from the one holding `offset`, below `upto` (default: the high watermark)."""
        ...

    def changed(self) -> asyncio.Event:
        """An event set at the replica's next change (an append, its high watermark, its role); take it before
        looking, so no change is missed."""
        ...


class PeerCalls(Protocol):
    async def call_json(self, method: str, url: str, *, body: Any = None, params: dict[str, Any] | None = None,
                        headers: dict[str, str] | None = None, timeout_s: float | None = None) -> Any:
        """A call to another broker's public JSON API, marked as forwarded (that broker never forwards it again);
        None for an answer without a body. Errors arrive as the `GoQueueError` the peer raised, an unreachable
        peer as `Unavailable`."""
        ...


class TopicLookup(Protocol):
    def topics(self) -> Mapping[str, TopicFacts]:
        """Every topic in the cluster metadata, by name (internal ones included)."""
        ...

    def topic(self, name: str) -> TopicFacts:
        """The topic; TOPIC_NOT_FOUND when it does not exist."""
        ...

    async def create_topic(self, spec: TopicCreate, *, internal: bool = False) -> None:
        """Create a topic (`internal`: a name starting with `__` is allowed: the state topic)."""
        ...

    async def update_topic(self, name: str, partitions: int | None, config: dict[str, object] | None) -> None:
        """Grow a topic and/or set settings (by their API names)."""
        ...


class Records(Protocol):
    @property
    def max_fetch_bytes(self) -> int:
        """`limits.maxFetchBytes`: the most a fetch returns (beyond its first batch)."""
        ...

    @property
    def max_wait_s(self) -> float:
        """`limits.maxWait`: the longest a long-poll may wait."""
        ...

    async def produce(self, topic: str, records: Sequence[OutgoingRecord]) -> None:
        """Append to a user topic (partitions chosen by key or round-robin, acks=all), wherever it is led."""
        ...

    async def fetch(self, topic: str, index: int, offset: int, max_bytes: int) -> Fetched:
        """Batches from `offset` from the partition's leader, wherever it is; OFFSET_OUT_OF_RANGE (with the
        `log_start_offset` detail) outside the leader's log."""
        ...

    async def offsets(self, topic: str, index: int, timestamp_ms: int | None = None) -> PartitionBounds:
        """Log start and high watermark from the partition's leader, and the first offset at or after
        `timestamp_ms` (the log end when none is) when one is asked."""
        ...


class StatePartitions(Protocol):
    async def append_local(self, topic: str, index: int, leader_epoch: int, records: Sequence[OutgoingRecord]) -> int:
        """Append to a partition this broker leads at `leader_epoch`, and return (the first offset) once every
        in-sync replica has the records. Never forwarded: NOT_LEADER when this broker does not lead it at that
        epoch, before or during the write."""
        ...

    def local_replica(self, topic: str, index: int) -> LocalReplica | None:
        """This broker's replica of the partition; None when it holds none."""
        ...

    def roles(self, topic: str) -> list[RoleChange]:
        """The roles of this broker's replicas of `topic` now."""
        ...

    def subscribe_roles(self, listener: Callable[[RoleChange], None]) -> None:
        """Call `listener` on the event loop after every role or leader-epoch change of a local replica (any
        topic), and when one is dropped."""
        ...

    def unsubscribe_roles(self, listener: Callable[[RoleChange], None]) -> None: ...


class ClusterView(Protocol):
    @property
    def broker_id(self) -> int: ...

    @property
    def cluster_size(self) -> int:
        """How many brokers the cluster is configured with (`cluster.peers`; 1 alone)."""
        ...

    def partition_leaders(self, topic: str) -> Mapping[int, Leadership]:
        """Leader and leader epoch of every partition of `topic` in the cluster metadata (empty: no such topic)."""
        ...

    @property
    def paused_all(self) -> bool:
        """The cluster-wide pause-all flag (cluster metadata: every coordinator reads the same)."""
        ...

    async def set_paused_all(self, paused: bool) -> None:
        """Set the pause-all flag (one metadata command)."""
        ...


class Peers(Protocol):
    @property
    def peers(self) -> PeerCalls: ...

    def broker_url(self, broker_id: int) -> str:
        """The base URL of a broker's public HTTP API."""
        ...


class ConsumerHost(TopicLookup, Records, StatePartitions, ClusterView, Peers, Protocol):
    @property
    def metrics_registry(self) -> CollectorRegistry:
        """Where the consumer gauges are registered (scraped with the broker's /metrics)."""
        ...
