"""A GoQueueUser's ACLs as the brokers' entries, and the changes that make the brokers hold exactly those. Pure.

One CRD rule (a resource, several operations, allow or deny) is one broker entry per operation
(`goqueue-admin acl add` takes one operation at a time): principal `User:<name>`; pattern `literal` or `prefixed`
(the CRD's `prefix`, Strimzi's spelling); a cluster rule names the one cluster, `*`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from goqueue.models import AclSpec
from goqueue_operator.users.view import AclRuleSpec

CLUSTER_NAME = "*"  # the brokers' one cluster resource, as `goqueue-admin acl add -r cluster -n '*'` names it

AclKey = tuple[str, str, str, str, str, bool]  # principal, resource type, name, pattern, operation, allow


def key(acl: AclSpec) -> AclKey:
    return (acl.principal, acl.resource_type, acl.name, acl.pattern, acl.operation, acl.allow)


def broker_acls(principal: str, rules: Iterable[AclRuleSpec]) -> list[AclSpec]:
    """The broker entries a user's rules stand for, each once, in a stable order."""
    found: dict[AclKey, AclSpec] = {}
    for rule in rules:
        resource = rule.resource
        name = CLUSTER_NAME if resource.type == "cluster" else resource.name or "*"
        pattern = "prefixed" if resource.pattern_type == "prefix" else "literal"
        for operation in rule.operations:
            acl = AclSpec.model_validate({"principal": principal, "resourceType": resource.type, "name": name,
                                          "pattern": pattern, "operation": operation,
                                          "allow": rule.type == "allow"})
            found.setdefault(key(acl), acl)
    return [found[k] for k in sorted(found)]


@dataclass(frozen=True)
class AclPlan:
    add: list[AclSpec]
    remove: list[AclSpec]

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove

    def summary(self) -> str:
        parts = [f"+{_text(a)}" for a in self.add] + [f"-{_text(a)}" for a in self.remove]
        return "; ".join(parts)


def plan_acls(desired: Iterable[AclSpec], live: Iterable[AclSpec]) -> AclPlan:
    """What to add and remove so the brokers hold exactly `desired` (`live`: the principal's entries now)."""
    wanted = {key(a): a for a in desired}
    held = {key(a): a for a in live}
    return AclPlan(add=[wanted[k] for k in sorted(wanted.keys() - held.keys())],
                   remove=[held[k] for k in sorted(held.keys() - wanted.keys())])


def _text(acl: AclSpec) -> str:
    verb = "allow" if acl.allow else "deny"
    return f"{verb} {acl.operation} on {acl.resource_type} {acl.name!r} ({acl.pattern})"
