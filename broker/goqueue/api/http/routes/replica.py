"""Broker-to-broker routes: follower fetches and leader-epoch queries (msgpack bodies, never for clients).

Served on the internal listener (`broker.internalPort`), behind its broker-credential check (`api/http/app.py`): a
forged follower fetch would let a leader acknowledge acks=all writes its frozen followers never had. The client port
serves them only while a broker of the previous version is a member (a rolling upgrade), which knows no other way.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request, Response

from goqueue import limits
from goqueue.api.http.deps import BrokerDep
from goqueue.errors import InvalidRequest
from goqueue.models import within
from goqueue.replication.peers import REPLICA_MEDIA_TYPE, ReplicaFetchRequest

router = APIRouter(prefix="/internal/v1/replica", tags=["internal"], include_in_schema=False)

decode_fetch = msgspec.msgpack.Decoder(ReplicaFetchRequest).decode
encode_answer = msgspec.msgpack.Encoder().encode


@router.post("/fetch")  # on the internal listener `fast_replica_fetch.FastReplicaFetch` answers it first
async def replica_fetch(request: Request, broker: BrokerDep) -> Response:
    try:
        fetch = decode_fetch(await request.body())
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"malformed replica fetch: {exc}") from exc
    answer = await broker.replicas.serve_replica_fetch(fetch)
    return Response(encode_answer(answer), media_type=REPLICA_MEDIA_TYPE)


@router.get("/epoch-end")
async def epoch_end(broker: BrokerDep, topic: str,
                    partition: Annotated[int, Query(**within(limits.PARTITION))],
                    epoch: Annotated[int, Query(**within(limits.LEADER_EPOCH))]) -> dict[str, int]:
    found, end = broker.replicas.epoch_end_offset(topic, partition, epoch)
    return {"epoch": found, "endOffset": end}


@router.get("/size")
async def replica_size(broker: BrokerDep, topic: str,
                       partition: Annotated[int, Query(**within(limits.PARTITION))]) -> dict[str, int]:
    """The bytes this broker's replica of a partition holds (0 when it has none yet): what a reassignment's new
    replica has copied so far (`GET /v1/admin/cluster/reassignments` asks the adding brokers)."""
    local = broker.replicas.partitions.get((topic, partition))
    return {"sizeBytes": local.log.size_bytes if local is not None else 0}
