"""Cluster read-outs: `goqueue-admin cluster status|members|leader` and `replication status`.

All answers come from this broker's copy of the Raft metadata (brokers, leaders, ISRs) plus what it knows
locally (offsets of the replicas it holds, follower lag of the partitions it leads). A single broker is a
one-member cluster and answers the same way.

Any principal let in may read them; the partitions `replication status` lists are those of topics the caller may
describe (as the topic list), while its counts, like `cluster status`'s, are the whole cluster's health.
"""

from __future__ import annotations

from fastapi import APIRouter

from goqueue.api.http.auth import AUTH_ERRORS, AUTHENTICATED, AccessDep
from goqueue.api.http.deps import BrokerDep
from goqueue.api.http.errors import error_responses
from goqueue.broker import Broker
from goqueue.errors import NotReady
from goqueue.models import ClusterLeader, ClusterMember, ClusterStatus, ReplicaState, ReplicationStatus
from goqueue.replication.reassignment import under_replicated
from goqueue.security.acls import Operation
from goqueue.security.acls import topic as topic_resource

router = APIRouter(tags=["cluster"], responses=AUTH_ERRORS,
                   dependencies=[AUTHENTICATED])  # read-outs: any principal let in may read them

_NOT_READY = error_responses(NotReady)


def _members(broker: Broker) -> list[ClusterMember]:
    return [ClusterMember(
        broker_id=m["id"], host=m["host"], http_port=m["httpPort"], grpc_port=m["grpcPort"],
        raft_port=int(m["raftAddress"].rpartition(":")[2]), role="leader" if m["metadataLeader"] else "follower",
        status="up" if m["alive"] else "down", zone=m["zone"]) for m in broker.membership.members()]


def _leader(broker: Broker) -> ClusterLeader:
    leader = broker.membership.metadata_leader_id()
    entry = broker.membership.view.broker(leader) if leader is not None else None
    host = entry["host"] if entry else None
    status = broker.membership.raft.status() if broker.membership.raft is not None else {}
    return ClusterLeader(leader=leader, host=host, term=int(status.get("raft_term", 0)))


def _replica_states(broker: Broker) -> list[ReplicaState]:
    states = []
    for name, topic in sorted(broker.membership.state["topics"].items()):
        for index, meta in sorted(topic["partition_state"].items()):
            local = broker.replicas.partitions.get((name, index))
            lag: dict[str, int] = {}
            if local is not None and local.is_leader:
                end = local.log.log_end_offset
                lag = {str(b): max(0, end - p.log_end_offset) for b, p in local.followers.items()}
            states.append(ReplicaState(
                topic=name, partition=index, leader=meta["leader"], leader_epoch=meta["leader_epoch"],
                replicas=list(meta["replicas"]), isr=list(meta["isr"]),
                high_watermark=local.log.high_watermark if local else 0,
                log_end_offset=local.log.log_end_offset if local else 0,
                under_replicated=under_replicated(meta) or meta["leader"] is None,
                follower_lag=lag))
    return states


@router.get("/v1/cluster/status", response_model=ClusterStatus, summary="Cluster health at a glance",
            responses=_NOT_READY)
async def cluster_status(broker: BrokerDep) -> ClusterStatus:
    broker.check_ready()
    members = _members(broker)
    states = _replica_states(broker)
    offline = sum(1 for s in states if s.leader is None) + len(broker.replicas.offline)
    under = sum(1 for s in states if s.under_replicated)
    live = sum(1 for m in members if m.status == "up")
    return ClusterStatus(
        mode="cluster" if len(members) > 1 else "single-node",
        healthy=live == len(members) and offline == 0 and under == 0, broker_id=broker.broker_id,
        leader=_leader(broker), brokers=len(members), live_brokers=live, topics=len(broker.registry.topics),
        partitions=len(states), offline_partitions=offline, under_replicated_partitions=under, members=members)


@router.get("/v1/cluster/members", response_model=list[ClusterMember], summary="Brokers of the cluster",
            responses=_NOT_READY)
async def cluster_members(broker: BrokerDep) -> list[ClusterMember]:
    broker.check_ready()
    return _members(broker)


@router.get("/v1/cluster/leader", response_model=ClusterLeader, summary="The metadata leader",
            responses=_NOT_READY)
async def cluster_leader(broker: BrokerDep) -> ClusterLeader:
    broker.check_ready()
    return _leader(broker)


@router.get("/v1/replication/status", response_model=ReplicationStatus, summary="Replicas and ISR per partition",
            responses=_NOT_READY)
async def replication_status(broker: BrokerDep, access: AccessDep) -> ReplicationStatus:
    broker.check_ready()
    states = _replica_states(broker)
    described = {name for name in {s.topic for s in states} if access.allowed(topic_resource(name), Operation.DESCRIBE)}
    return ReplicationStatus(broker_id=broker.broker_id, partitions=[s for s in states if s.topic in described],
                             under_replicated=sum(1 for s in states if s.under_replicated),
                             offline=sum(1 for s in states if s.leader is None) + len(broker.replicas.offline))
