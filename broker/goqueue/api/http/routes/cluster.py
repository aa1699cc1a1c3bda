"""Cluster read-outs: `goqueue-admin cluster status|members|leader` and `replication status`.

Single-node answers for now (this broker is the whole cluster and the leader of everything); the clustering
issue replaces the sources with the Raft metadata and the partition leaders' in-sync replica sets, keeping these
response models.
"""

from __future__ import annotations

import socket

from fastapi import APIRouter

from goqueue.api.http.deps import BrokerDep
from goqueue.broker import Broker
from goqueue.models import ClusterLeader, ClusterMember, ClusterStatus, ReplicaState, ReplicationStatus

router = APIRouter(tags=["cluster"])


def _self_member(broker: Broker) -> ClusterMember:
    b = broker.settings.broker
    host = b.advertised_host or (socket.gethostname() if b.host in {"0.0.0.0", "::"} else b.host)
    return ClusterMember(broker_id=broker.broker_id, host=host, http_port=b.port, grpc_port=b.grpc_port,
                         raft_port=b.raft_port, role="leader", status="up" if broker.ready else "starting",
                         zone=b.zone)


def _leader(broker: Broker) -> ClusterLeader:
    return ClusterLeader(leader=broker.broker_id, host=_self_member(broker).host, term=0)


@router.get("/v1/cluster/status", response_model=ClusterStatus, summary="Cluster health at a glance")
async def cluster_status(broker: BrokerDep) -> ClusterStatus:
    return ClusterStatus(
        mode="single-node", healthy=broker.ready and not broker.offline, broker_id=broker.broker_id,
        leader=_leader(broker), brokers=1, live_brokers=1 if broker.ready else 0,
        topics=len(broker.registry.topics), partitions=len(broker.partitions) + len(broker.offline),
        offline_partitions=len(broker.offline), under_replicated_partitions=0, members=[_self_member(broker)])


@router.get("/v1/cluster/members", response_model=list[ClusterMember], summary="Brokers of the cluster")
async def cluster_members(broker: BrokerDep) -> list[ClusterMember]:
    return [_self_member(broker)]


@router.get("/v1/cluster/leader", response_model=ClusterLeader, summary="The metadata leader")
async def cluster_leader(broker: BrokerDep) -> ClusterLeader:
    return _leader(broker)


@router.get("/v1/replication/status", response_model=ReplicationStatus, summary="Replicas and ISR per partition")
async def replication_status(broker: BrokerDep) -> ReplicationStatus:
    broker.check_ready()
    states = []
    for (topic, partition) in sorted(broker.partitions):
        held = broker.partitions[(topic, partition)].log
        states.append(ReplicaState(
            topic=topic, partition=partition, leader=broker.broker_id, leader_epoch=broker.leader_epoch,
            replicas=[broker.broker_id], isr=[broker.broker_id], high_watermark=held.high_watermark,
            log_end_offset=held.log_end_offset, under_replicated=False))
    for (topic, partition) in sorted(broker.offline):
        states.append(ReplicaState(
            topic=topic, partition=partition, leader=None, leader_epoch=broker.leader_epoch,
            replicas=[broker.broker_id], isr=[], high_watermark=0, log_end_offset=0, under_replicated=True))
    return ReplicationStatus(broker_id=broker.broker_id, partitions=states, under_replicated=len(broker.offline),
                             offline=len(broker.offline))
