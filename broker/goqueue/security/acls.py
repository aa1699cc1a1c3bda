"""Access control lists, and `authorize`: may this principal do this to that resource? Pure.

An entry allows (or denies) one principal one operation on the resources it names: a resource type (topic, group,
cluster), a name and a pattern — `literal` (the name, or `*` for every resource of the type) or `prefixed` (every
name starting with it). `authorize` follows Kafka's rules:

* a matching deny wins over any allow; no matching allow is a refusal (everything not granted is refused);
* `User:*` matches every principal, the anonymous one included; operation `all` matches every operation;
* `describe` is granted by any other allowed operation on the resource (a producer may see its topic);
* super users (config `security.superUsers`) are allowed everything, and the check is skipped when ACLs are off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from goqueue.security.principal import USER, WILDCARD, Principal, parse_principal


class ResourceType(StrEnum):
    TOPIC = "topic"
    GROUP = "group"
    CLUSTER = "cluster"


class PatternType(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    PRODUCE = "produce"
    CONSUME = "consume"
    DESCRIBE = "describe"
    ALTER = "alter"
    DELETE = "delete"
    CREATE = "create"
    RESET = "reset"  # a group's committed offsets moved by an administrator
    ADMIN = "admin"  # the cluster's administration and operator endpoints, users and ACLs
    ALL = "all"


CLUSTER_NAME = "goqueue"  # the one cluster resource
EVERYONE = f"{USER}:{WILDCARD}"

OPERATIONS: Mapping[ResourceType, frozenset[Operation]] = {
    ResourceType.TOPIC: frozenset({Operation.PRODUCE, Operation.CONSUME, Operation.DESCRIBE, Operation.ALTER,
                                   Operation.DELETE, Operation.CREATE, Operation.ALL}),
    ResourceType.GROUP: frozenset({Operation.CONSUME, Operation.RESET, Operation.DELETE, Operation.DESCRIBE,
                                   Operation.ALTER, Operation.ALL}),  # alter: declare settings, pause, resume
    ResourceType.CLUSTER: frozenset({Operation.ADMIN, Operation.ALL}),
}


@dataclass(frozen=True)
class Resource:
    type: ResourceType
    name: str

    def __str__(self) -> str:
        return f"{self.type.value} {self.name!r}" if self.type is not ResourceType.CLUSTER else "the cluster"


def topic(name: str) -> Resource:
    return Resource(ResourceType.TOPIC, name)


def group(name: str) -> Resource:
    return Resource(ResourceType.GROUP, name)


CLUSTER = Resource(ResourceType.CLUSTER, CLUSTER_NAME)


@dataclass(frozen=True, order=True)
class Acl:
    principal: str  # `User:<name>` or `User:*`
    resource_type: ResourceType
    name: str
    pattern: PatternType
    operation: Operation
    allow: bool = True

    def __post_init__(self) -> None:
        parse_principal(self.principal)  # ValueError names the problem
        if self.operation not in OPERATIONS[self.resource_type]:
            allowed = ", ".join(sorted(OPERATIONS[self.resource_type]))
            raise ValueError(f"operation {self.operation.value!r} does not apply to a {self.resource_type.value}; "
                             f"one of: {allowed}")
        if not self.name or (self.pattern is PatternType.PREFIXED and self.name == WILDCARD):
            raise ValueError("an ACL names a resource: a name, a prefix, or * (literal) for all of them")

    def matches(self, principal: Principal, resource: Resource) -> bool:
        """Principal and resource match; the operation is `authorize`'s business."""
        if self.principal not in (EVERYONE, str(principal)):  # the form was checked when the entry was made
            return False
        if self.resource_type is not resource.type:
            return False
        if self.pattern is PatternType.PREFIXED:
            return resource.name.startswith(self.name)
        return self.name in (WILDCARD, resource.name)


def _grants(entry_operation: Operation, operation: Operation) -> bool:
    return entry_operation in (operation, Operation.ALL) or operation is Operation.DESCRIBE


def authorize(acls: Iterable[Acl], principal: Principal, resource: Resource, operation: Operation) -> bool:
    """Whether `principal` may do `operation` to `resource` under `acls` (super users are the caller's rule)."""
    allowed = False
    for entry in acls:
        if not entry.matches(principal, resource):
            continue
        if not entry.allow and entry.operation in (operation, Operation.ALL):
            return False
        if entry.allow and _grants(entry.operation, operation):
            allowed = True
    return allowed
