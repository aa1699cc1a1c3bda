"""The typed view of a GoQueueUser (crds/goqueue.io_goqueueusers.yaml field for field; a unit test checks both
ways, as views.py does for the other kinds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from goqueue_operator.views import JSON, ClusterRef, ObjectMeta, _Crd, _parse

ROTATE_ANNOTATION = "goqueue.io/rotate-credentials"  # "true": issue a new password now (removed once done)

Operation = Literal["produce", "consume", "describe", "alter", "delete", "create", "reset", "admin", "all"]


class AuthenticationSpec(_Crd):
    type: Literal["scram", "tls"]


class AclResourceSpec(_Crd):
    type: Literal["topic", "group", "cluster"]
    name: str | None = None
    pattern_type: Literal["literal", "prefix"] = "literal"


class AclRuleSpec(_Crd):
    resource: AclResourceSpec
    operations: list[Operation] = Field(min_length=1)
    type: Literal["allow", "deny"] = "allow"


class AuthorizationSpec(_Crd):
    acls: list[AclRuleSpec] = Field(default_factory=list)


class QuotasSpec(_Crd):
    producer_byte_rate: int | None = Field(None, ge=1)
    consumer_byte_rate: int | None = Field(None, ge=1)


class UserSpec(_Crd):
    cluster_ref: ClusterRef
    authentication: AuthenticationSpec
    authorization: AuthorizationSpec = AuthorizationSpec()
    quotas: QuotasSpec = QuotasSpec()


@dataclass(frozen=True)
class UserView:
    meta: ObjectMeta
    spec: UserSpec
    credentials_issued_at: str | None = None  # status: kept from one reconcile to the next

    @classmethod
    def from_body(cls, body: JSON) -> UserView:
        issued = (body.get("status") or {}).get("credentialsIssuedAt")
        return cls(meta=ObjectMeta.from_body(body), spec=_parse(UserSpec, body.get("spec"), "spec"),
                   credentials_issued_at=str(issued) if issued else None)

    @property
    def broker_name(self) -> str:
        """The user's name on the brokers, and its Secret's."""
        return self.meta.name

    @property
    def principal(self) -> str:
        return f"User:{self.meta.name}"

    @property
    def cluster_name(self) -> str:
        return self.spec.cluster_ref.name

    @property
    def deletion_policy(self) -> str:
        return "Delete"  # a deleted GoQueueUser leaves no principal behind (its ACLs neither)

    @property
    def rotation_requested(self) -> bool:
        return self.meta.flag(ROTATE_ANNOTATION)
