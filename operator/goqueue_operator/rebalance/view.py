"""The typed view of a GoQueueRebalance (crds/goqueue.io_goqueuerebalances.yaml field for field; a unit test checks
both ways, as views.py does for the other kinds), and the status the operator keeps there on purpose: the proposal
(what approving executes) and whether the brokers answered the execute call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from goqueue_operator.views import JSON, ClusterRef, ObjectMeta, SpecError, _Crd, _parse, _Record

REBALANCE_ANNOTATION = "goqueue.io/rebalance"  # approve | stop | refresh: acted on once, then removed
Action = Literal["approve", "stop", "refresh"]
ACTIONS: tuple[Action, ...] = ("approve", "stop", "refresh")


class GoalsSpec(_Crd):
    balance: bool = False
    drain_brokers: list[int] = Field(default_factory=list)
    add_brokers: list[int] = Field(default_factory=list)
    replication_factors: dict[str, int] = Field(default_factory=dict)


class RebalanceSpec(_Crd):
    cluster_ref: ClusterRef
    goals: GoalsSpec
    throttle_bytes_per_second: int | None = Field(None, ge=1024)
    approved: bool = False


class ProposedMove(_Record):
    topic: str
    partition: int
    replicas: list[int]
    target: list[int]
    version: int
    bytes_to_copy: int = 0


class ProposalRecord(_Record):
    goals: str = ""
    created_at: str | None = None
    moves: int = 0
    bytes_to_copy: int = 0
    throttle_bytes_per_second: int | None = None
    estimated_seconds: float | None = None
    reasons: list[str] = Field(default_factory=list)
    partitions: list[ProposedMove] = Field(default_factory=list)


class ProgressRecord(_Record):
    executed: bool = False
    started_at: str | None = None
    refused: list[str] = Field(default_factory=list)


class RebalanceRecord(_Record):
    phase: str | None = None
    proposal: ProposalRecord | None = None
    progress: ProgressRecord | None = None
    conditions: list[JSON] = Field(default_factory=list)


@dataclass(frozen=True)
class RebalanceView:
    meta: ObjectMeta
    spec: RebalanceSpec
    record: RebalanceRecord

    @classmethod
    def from_body(cls, body: JSON) -> RebalanceView:
        view = cls(meta=ObjectMeta.from_body(body), spec=_parse(RebalanceSpec, body.get("spec"), "spec"),
                   record=_parse(RebalanceRecord, body.get("status"), "status"))
        raw = view.meta.annotations.get(REBALANCE_ANNOTATION)
        if raw is not None and raw.strip().lower() not in ACTIONS:
            raise SpecError(f"annotation {REBALANCE_ANNOTATION}={raw!r}: use one of {', '.join(ACTIONS)}")
        return view

    @property
    def cluster_name(self) -> str:
        return self.spec.cluster_ref.name

    @property
    def action(self) -> Action | None:
        """The one-shot action the annotation asks for (None: no annotation)."""
        raw = self.meta.annotations.get(REBALANCE_ANNOTATION)
        if raw is None:
            return None
        value = raw.strip().lower()
        return next(a for a in ACTIONS if a == value)

    @property
    def goals_key(self) -> str:
        """The spec a proposal answers (goals and throttle, canonical): a different one needs a new proposal;
        `approved` is not part of it (approving a reviewed proposal must not replace it)."""
        return json.dumps({"goals": self.spec.goals.model_dump(by_alias=True, mode="json"),
                           "throttleBytesPerSecond": self.spec.throttle_bytes_per_second},
                          sort_keys=True, separators=(",", ":"))
