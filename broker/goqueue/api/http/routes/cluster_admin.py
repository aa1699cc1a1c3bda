"""The operator's admin API: the questions a safe rolling restart, drain and scale-down ask the cluster, and
replica reassignments (plan, execute, progress, cancel).

Any broker answers for the whole cluster from the replicated metadata; changes (leadership moves, replica
reassignments) are compare-and-set metadata commands. Specified for the operator in docs/OPERATOR.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from goqueue import limits
from goqueue.api.http.auth import AUTH_ERRORS, CLUSTER_ADMIN
from goqueue.api.http.deps import BrokerDep
from goqueue.api.http.errors import METADATA_CHANGE, error_responses
from goqueue.errors import BrokerNotFound, InvalidRequest, NotReady
from goqueue.models import (
    CaughtUp,
    DrainProgress,
    HeldReplicas,
    LeadershipTransfer,
    ReassignmentCancel,
    ReassignmentCancelled,
    ReassignmentExecute,
    ReassignmentGoals,
    ReassignmentPlan,
    ReassignmentProgress,
    ReassignmentStarted,
    RebalanceAccepted,
    RestartCheck,
    within,
)

router = APIRouter(prefix="/v1/admin/cluster", tags=["cluster admin"], responses=AUTH_ERRORS,
                   dependencies=[CLUSTER_ADMIN])  # admin on the cluster (security.acls)

BrokerId = Annotated[int, Path(description="Broker id (the StatefulSet ordinal).", **within(limits.BROKER_ID))]
_QUESTION = error_responses(BrokerNotFound, NotReady)
_CHANGE = error_responses(BrokerNotFound, METADATA_CHANGE)


@router.get("/brokers/{broker_id}/pre-restart-check", response_model=RestartCheck,
            summary="Would restarting this broker now be safe?", responses=_QUESTION)
async def pre_restart_check(broker_id: BrokerId, broker: BrokerDep) -> RestartCheck:
    broker.check_ready()
    reasons = broker.admin.pre_restart_check(broker_id)
    return RestartCheck(broker_id=broker_id, safe=not reasons, reasons=reasons)


@router.get("/brokers/{broker_id}/caught-up", response_model=CaughtUp,
            summary="Is a restarted broker back in the quorum and every ISR?", responses=_QUESTION)
async def caught_up(broker_id: BrokerId, broker: BrokerDep) -> CaughtUp:
    broker.check_ready()
    reasons = broker.admin.caught_up(broker_id)
    return CaughtUp(broker_id=broker_id, caught_up=not reasons, reasons=reasons)


@router.post("/brokers/{broker_id}/transfer-leadership", response_model=LeadershipTransfer,
             summary="Move partition leadership off this broker", responses=_CHANGE)
async def transfer_leadership(broker_id: BrokerId, broker: BrokerDep) -> LeadershipTransfer:
    broker.check_ready()
    reasons = await broker.admin.transfer_leadership(broker_id)
    return LeadershipTransfer(broker_id=broker_id, done=not reasons, reasons=reasons)


@router.get("/brokers/{broker_id}/replicas", response_model=HeldReplicas,
            summary="Replicas and leaderships this broker holds", responses=_QUESTION)
async def held_replicas(broker_id: BrokerId, broker: BrokerDep) -> HeldReplicas:
    broker.check_ready()
    broker.admin.pre_restart_check(broker_id)  # validates the id
    replicas, leaders = broker.admin.held(broker_id)
    return HeldReplicas(broker_id=broker_id, replicas=replicas, leaders=leaders)


@router.post("/brokers/{broker_id}/drain", response_model=DrainProgress,
             summary="Move every replica off this broker (before scale-down)", responses=_CHANGE)
async def drain(broker_id: BrokerId, broker: BrokerDep) -> DrainProgress:
    broker.check_ready()
    remaining, stuck = await broker.admin.drain(broker_id)
    reasons = stuck or ([] if remaining == 0 else [f"{remaining} replicas still moving off broker {broker_id}; "
                                                   "call again"])
    return DrainProgress(broker_id=broker_id, done=remaining == 0, replicas=remaining, reasons=reasons)


@router.post("/rebalance", response_model=RebalanceAccepted, summary="Spread replicas over all brokers (after a "
             "scale-up)", responses=error_responses(METADATA_CHANGE))
async def rebalance(broker: BrokerDep) -> RebalanceAccepted:
    broker.check_ready()
    return RebalanceAccepted(accepted=True, moved=await broker.admin.rebalance())


@router.post("/reassignments/plan", response_model=ReassignmentPlan, summary="Propose replica moves for goals "
             "(balance, drain, add brokers, replication factor): moves, bytes to copy, estimated time",
             responses=error_responses(InvalidRequest, NotReady))
async def plan_reassignment(goals: ReassignmentGoals, broker: BrokerDep) -> ReassignmentPlan:
    broker.check_ready()
    return await broker.admin.propose_reassignment(goals)


@router.post("/reassignments", response_model=ReassignmentStarted, summary="Execute a proposal's moves with a "
             "replication throttle (new replicas copy first, old ones leave last)",
             responses=error_responses(InvalidRequest, *METADATA_CHANGE))
async def execute_reassignment(request: ReassignmentExecute, broker: BrokerDep) -> ReassignmentStarted:
    broker.check_ready()
    started, reasons = await broker.admin.execute_reassignment(request.moves, request.throttle)
    return ReassignmentStarted(started=started, reasons=reasons)


@router.get("/reassignments", response_model=ReassignmentProgress, summary="Partitions moving now",
            responses=error_responses(NotReady))
async def reassignment_progress(broker: BrokerDep) -> ReassignmentProgress:
    broker.check_ready()
    return await broker.admin.progress_with_bytes()


@router.post("/reassignments/cancel", response_model=ReassignmentCancelled, summary="Send moving partitions back "
             "to their original replicas", responses=error_responses(InvalidRequest, *METADATA_CHANGE))
async def cancel_reassignment(request: ReassignmentCancel, broker: BrokerDep) -> ReassignmentCancelled:
    broker.check_ready()
    cancelled, reasons = await broker.admin.cancel_reassignment(request.partitions)
    return ReassignmentCancelled(cancelled=cancelled, reasons=reasons)
