"""The operator's admin API: the questions a safe rolling restart, drain and scale-down ask the cluster.

Any broker answers for the whole cluster from the replicated metadata; changes (leadership moves, replica
reassignments) are compare-and-set metadata commands. Specified for the operator in docs/OPERATOR.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from goqueue import limits
from goqueue.api.http.deps import BrokerDep
from goqueue.api.http.errors import METADATA_CHANGE, error_responses
from goqueue.errors import BrokerNotFound, NotReady
from goqueue.models import within

router = APIRouter(prefix="/v1/admin/cluster", tags=["cluster admin"])

BrokerId = Annotated[int, Path(description="Broker id (the StatefulSet ordinal).", **within(limits.BROKER_ID))]
_QUESTION = error_responses(BrokerNotFound, NotReady)
_CHANGE = error_responses(BrokerNotFound, METADATA_CHANGE)


@router.get("/brokers/{broker_id}/pre-restart-check", summary="Would restarting this broker now be safe?",
            responses=_QUESTION)
async def pre_restart_check(broker_id: BrokerId, broker: BrokerDep) -> dict[str, object]:
    broker.check_ready()
    reasons = broker.admin.pre_restart_check(broker_id)
    return {"brokerId": broker_id, "safe": not reasons, "reasons": reasons}


@router.get("/brokers/{broker_id}/caught-up", summary="Is a restarted broker back in the quorum and every ISR?",
            responses=_QUESTION)
async def caught_up(broker_id: BrokerId, broker: BrokerDep) -> dict[str, object]:
    broker.check_ready()
    reasons = broker.admin.caught_up(broker_id)
    return {"brokerId": broker_id, "caughtUp": not reasons, "reasons": reasons}


@router.post("/brokers/{broker_id}/transfer-leadership", summary="Move partition leadership off this broker",
             responses=_CHANGE)
async def transfer_leadership(broker_id: BrokerId, broker: BrokerDep) -> dict[str, object]:
    broker.check_ready()
    reasons = await broker.admin.transfer_leadership(broker_id)
    return {"brokerId": broker_id, "done": not reasons, "reasons": reasons}


@router.get("/brokers/{broker_id}/replicas", summary="Replicas and leaderships this broker holds",
            responses=_QUESTION)
async def held_replicas(broker_id: BrokerId, broker: BrokerDep) -> dict[str, object]:
    broker.check_ready()
    broker.admin.pre_restart_check(broker_id)  # validates the id
    replicas, leaders = broker.admin.held(broker_id)
    return {"brokerId": broker_id, "replicas": replicas, "leaders": leaders}


@router.post("/brokers/{broker_id}/drain", summary="Move every replica off this broker (before scale-down)",
             responses=_CHANGE)
async def drain(broker_id: BrokerId, broker: BrokerDep) -> dict[str, object]:
    broker.check_ready()
    remaining, stuck = await broker.admin.drain(broker_id)
    reasons = stuck or ([] if remaining == 0 else [f"{remaining} replicas still moving off broker {broker_id}; "
                                                   "call again"])
    return {"brokerId": broker_id, "done": remaining == 0, "replicas": remaining, "reasons": reasons}


@router.post("/rebalance", summary="Spread replicas over all brokers (after a scale-up)",
             responses=error_responses(METADATA_CHANGE))
async def rebalance(broker: BrokerDep) -> dict[str, object]:
    broker.check_ready()
    moved = await broker.admin.rebalance()
    return {"accepted": True, "moved": moved, "reasons": []}
