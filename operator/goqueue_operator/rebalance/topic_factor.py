"""A GoQueueTopic's replicationFactor change, through the same reassignment machinery as a GoQueueRebalance. Pure.

Nothing is recorded by the operator: the brokers' metadata says everything. While any partition of the topic
moves, the change waits (and reports what copies); when none moves and the brokers' factor still differs from the
spec, a proposal for the topic's factor is asked for and executed at once (the spec change is the approval; each
move is compare-and-set on its partition version, so one executed twice is refused). It does not start while other
partitions of the cluster move (a GoQueueRebalance, another topic's change): the brokers hold one replication
throttle for all moves and each execute sets it, so starting would change theirs. A proposal without moves is a
Warning (ReplicationFactorNotPlanned), never an empty execute. The topic's
replication factor follows on the brokers when its last partition completes. A factor above the broker count is
refused by the brokers' planner with the reason (Ready=False RejectedByBroker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from goqueue.models import PartitionReassignment
from goqueue_operator.status.conditions import Condition

REASON = "ReplicationFactorChanging"  # Ready=False while the replicas move: progress, not a failure
WAITING = "WaitingForReassignment"  # Ready=False while another reassignment runs on the cluster: not a failure
NOT_PLANNED = "ReplicationFactorNotPlanned"  # the brokers planned no move for the change: a Warning


@dataclass(frozen=True)
class FactorChange:
    action: Literal["start", "wait"]
    ready: Condition
    status: dict[str, Any] = field(default_factory=dict)  # status.reassignment


def factor_change(topic: str, live: int, wanted: int, partitions: int,
                  moving: Sequence[PartitionReassignment]) -> FactorChange:
    ours = [p for p in moving if p.topic == topic]
    others = [p for p in moving if p.topic != topic]
    status: dict[str, Any] = {"fromReplicationFactor": live, "toReplicationFactor": wanted,
                              "partitionsMoving": len(ours), "partitionsTotal": partitions}
    if not ours and others:
        # The brokers keep one replication throttle for every move running: starting ours would replace the
        # throttle of the reassignment in progress (a GoQueueRebalance, another topic's change). Ours waits.
        busy = sorted({p.topic for p in others})
        message = (f"replication factor {live} → {wanted}: waiting for the reassignment in progress on the cluster "
                   f"to finish ({len(others)} partitions of {', '.join(busy[:5])}"
                   f"{f' and {len(busy) - 5} more topics' if len(busy) > 5 else ''} moving); the brokers have one "
                   "replication throttle for all moves, so this change starts after them")
        return FactorChange("wait", Condition("Ready", False, WAITING, message), {**status, "message": message})
    if not ours:
        message = f"replication factor {live} → {wanted}: asking the brokers to move the replicas"
        return FactorChange("start", Condition("Ready", False, REASON, message), {**status, "message": message})
    to_copy = [p.bytes_to_copy for p in ours]
    copied = [p.bytes_copied for p in ours]
    if all(b is not None for b in to_copy) and all(b is not None for b in copied):
        status |= {"bytesToCopy": sum(b or 0 for b in to_copy), "bytesCopied": sum(b or 0 for b in copied)}
    copying = sorted({b for p in ours for b in p.copying})
    message = (f"replication factor {live} → {wanted}: {len(ours)} of {partitions} partitions moving"
               + (f", new replicas on brokers {copying} still copying" if copying else ", completing"))
    return FactorChange("wait", Condition("Ready", False, REASON, message), {**status, "message": message})


def nothing_planned(topic: str, live: int, wanted: int, replica_counts: Sequence[int],
                    reasons: Sequence[str]) -> FactorChange:
    """The brokers' planner returned no move for the change: nothing is executed (an empty execute would leave the
    topic Ready=False "0 partitions moving" for ever); a Warning says why."""
    at_factor = bool(replica_counts) and all(count == wanted for count in replica_counts)
    why = (f"every partition already has {wanted} replicas but the brokers still report the topic's factor as "
           f"{live}" if at_factor else "the brokers planned no move for it")
    message = (f"replication factor {live} → {wanted}: {why}"
               + (f" ({'; '.join(reasons[:3])})" if reasons else ""))
    status = {"fromReplicationFactor": live, "toReplicationFactor": wanted, "partitionsMoving": 0,
              "partitionsTotal": len(replica_counts), "message": message}
    return FactorChange("wait", Condition("Ready", False, NOT_PLANNED, message, warning=True), status)
