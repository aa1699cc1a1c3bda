"""Principals: who a request acts as, written `<type>:<name>` as Kafka writes them (`User:alice`).

A principal comes from the connection: today the SCRAM session token a request carries, or nobody (the anonymous
principal); a client certificate's subject will resolve to a `User` principal the same way, so ACLs name principals
and never how they authenticated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

USER = "User"
ANONYMOUS_NAME = "ANONYMOUS"  # Kafka's name for the unauthenticated principal
WILDCARD = "*"  # in an ACL entry, `User:*` matches every principal, the anonymous one included

USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,128}")  # no ':' or ',' (SCRAM's separators), nothing to escape in logs


@dataclass(frozen=True, order=True)
class Principal:
    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"

    @property
    def anonymous(self) -> bool:
        return self == ANONYMOUS


ANONYMOUS = Principal(USER, ANONYMOUS_NAME)


def user(name: str) -> Principal:
    return Principal(USER, name)


def valid_user_name(name: str) -> bool:
    return bool(USER_NAME.fullmatch(name)) and name != ANONYMOUS_NAME


def parse_principal(text: str) -> Principal:
    """`User:alice` (or `User:*` in an ACL); ValueError names what is wrong."""
    kind, sep, name = text.partition(":")
    if not sep or kind != USER:
        raise ValueError(f"principal {text!r} is not User:<name>")
    if name not in (WILDCARD, ANONYMOUS_NAME) and not USER_NAME.fullmatch(name):
        raise ValueError(f"principal {text!r}: a user name is 1-128 characters of letters, digits and ._@-")
    return Principal(kind, name)
