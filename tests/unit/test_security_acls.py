"""ACL matching: `authorize` is a pure function of (entries, principal, resource, operation)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goqueue.security.acls import (
    CLUSTER,
    Acl,
    Operation,
    PatternType,
    ResourceType,
    authorize,
    group,
    topic,
)
from goqueue.security.principal import ANONYMOUS, parse_principal, user

pytestmark = pytest.mark.unit

ALICE, BOB = user("alice"), user("bob")
T, G, LIT, PRE = ResourceType.TOPIC, ResourceType.GROUP, PatternType.LITERAL, PatternType.PREFIXED


def acl(principal: str, kind: ResourceType, name: str, operation: Operation, pattern: PatternType = LIT,
        allow: bool = True) -> Acl:
    return Acl(principal, kind, name, pattern, operation, allow)


def test_nothing_granted_is_refused() -> None:
    assert not authorize([], ALICE, topic("orders"), Operation.PRODUCE)


def test_a_literal_entry_grants_its_operation_on_its_resource_to_its_principal_only() -> None:
    acls = [acl("User:alice", T, "orders", Operation.PRODUCE)]
    assert authorize(acls, ALICE, topic("orders"), Operation.PRODUCE)
    assert not authorize(acls, BOB, topic("orders"), Operation.PRODUCE)
    assert not authorize(acls, ALICE, topic("orders2"), Operation.PRODUCE)
    assert not authorize(acls, ALICE, topic("orders"), Operation.CONSUME)
    assert not authorize(acls, ALICE, group("orders"), Operation.CONSUME)
    assert not authorize(acls, ANONYMOUS, topic("orders"), Operation.PRODUCE)


def test_prefixed_and_wildcard_names() -> None:
    acls = [acl("User:alice", T, "team-a.", Operation.CONSUME, PRE), acl("User:bob", T, "*", Operation.PRODUCE)]
    assert authorize(acls, ALICE, topic("team-a.orders"), Operation.CONSUME)
    assert not authorize(acls, ALICE, topic("team-b.orders"), Operation.CONSUME)
    assert authorize(acls, BOB, topic("anything"), Operation.PRODUCE)


def test_the_wildcard_principal_matches_everyone_including_anonymous() -> None:
    acls = [acl("User:*", T, "public", Operation.CONSUME)]
    assert authorize(acls, ANONYMOUS, topic("public"), Operation.CONSUME)
    assert authorize(acls, BOB, topic("public"), Operation.CONSUME)


def test_deny_wins_over_allow() -> None:
    acls = [acl("User:*", T, "*", Operation.ALL), acl("User:bob", T, "secret", Operation.CONSUME, allow=False)]
    assert not authorize(acls, BOB, topic("secret"), Operation.CONSUME)
    assert authorize(acls, BOB, topic("secret"), Operation.PRODUCE)
    assert authorize(acls, ALICE, topic("secret"), Operation.CONSUME)


def test_any_allowed_operation_implies_describe_but_a_deny_of_describe_holds() -> None:
    assert authorize([acl("User:alice", T, "orders", Operation.PRODUCE)], ALICE, topic("orders"), Operation.DESCRIBE)
    denied = [acl("User:alice", T, "orders", Operation.PRODUCE),
              acl("User:alice", T, "orders", Operation.DESCRIBE, allow=False)]
    assert not authorize(denied, ALICE, topic("orders"), Operation.DESCRIBE)


def test_all_grants_every_operation_of_the_resource() -> None:
    acls = [acl("User:alice", ResourceType.CLUSTER, "*", Operation.ALL)]
    assert authorize(acls, ALICE, CLUSTER, Operation.ADMIN)


@pytest.mark.parametrize(("kind", "operation"), [(G, Operation.PRODUCE), (ResourceType.CLUSTER, Operation.CONSUME),
                                                  (T, Operation.RESET), (T, Operation.ADMIN)])
def test_an_operation_that_does_not_apply_to_the_resource_type_is_refused(kind: ResourceType,
                                                                          operation: Operation) -> None:
    with pytest.raises(ValueError, match="does not apply"):
        acl("User:alice", kind, "x", operation)


@pytest.mark.parametrize("principal", ["alice", "Group:x", "User:", "User:a:b", "User:has space"])
def test_a_malformed_principal_is_refused(principal: str) -> None:
    with pytest.raises(ValueError, match="principal"):
        acl(principal, T, "x", Operation.PRODUCE)


def test_a_prefixed_wildcard_is_refused() -> None:
    with pytest.raises(ValueError, match="names a resource"):
        acl("User:alice", T, "*", Operation.PRODUCE, PRE)


def test_principals_parse_and_print_alike() -> None:
    assert str(parse_principal("User:alice")) == "User:alice"
    assert parse_principal("User:ANONYMOUS") == ANONYMOUS


names = st.text(alphabet="ab.-", min_size=1, max_size=6)
operations = st.sampled_from([Operation.PRODUCE, Operation.CONSUME, Operation.DESCRIBE, Operation.ALTER,
                              Operation.DELETE, Operation.CREATE, Operation.ALL])
entries = st.builds(lambda who, name, op, prefixed, allow: acl(
    f"User:{who}", T, name, op, PRE if prefixed else LIT, allow),
    st.sampled_from(["alice", "bob", "*"]), names, operations, st.booleans(), st.booleans())


@given(st.lists(entries, max_size=8), names, operations.filter(lambda op: op is not Operation.ALL))
def test_the_decision_follows_the_rules(acls: list[Acl], name: str, operation: Operation) -> None:
    """A model of the documented rules, checked against the implementation on random entry lists."""
    resource = topic(name)
    matching = [a for a in acls if a.principal in ("User:alice", "User:*") and (
        name.startswith(a.name) if a.pattern is PRE else a.name == name)]
    denied = any(not a.allow and a.operation in (operation, Operation.ALL) for a in matching)
    allowed = any(a.allow and (a.operation in (operation, Operation.ALL) or operation is Operation.DESCRIBE)
                  for a in matching)
    assert authorize(acls, ALICE, resource, operation) is (allowed and not denied)


@given(st.lists(entries, max_size=8), names, operations)
def test_adding_a_deny_never_grants_and_adding_an_allow_never_refuses(acls: list[Acl], name: str,
                                                                      operation: Operation) -> None:
    before = authorize(acls, ALICE, topic(name), operation)
    assert not authorize([*acls, acl("User:alice", T, name, operation, allow=False)], ALICE, topic(name), operation)
    if before:
        assert authorize([*acls, acl("User:alice", T, name, operation)], ALICE, topic(name), operation)
