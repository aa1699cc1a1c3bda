"""Users and ACLs, kept in the replicated metadata: cluster admins only (docs/SECURITY.md, docs/RUNBOOK.md).

A user is created with its SCRAM-SHA-512 credential, which the client computes from the password (the password never
reaches the broker); creating an existing user replaces its credential — a new password, which ends its sessions.
"""

from __future__ import annotations

import base64
import contextlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from goqueue.api.gatekeeper import acl_entry, acl_from_entry
from goqueue.api.http.auth import AUTH_ERRORS, CLUSTER_ADMIN
from goqueue.api.http.body import CheckedBodyRoute
from goqueue.api.http.deps import BrokerDep
from goqueue.api.http.errors import METADATA_CHANGE, error_responses
from goqueue.errors import AclNotFound, InvalidRequest, UserNotFound
from goqueue.models import AclSpec, ScramCredentialSpec, UserInfo, UserQuotasSpec
from goqueue.replication import commands
from goqueue.replication.metadata import MetadataConflict
from goqueue.replication.view import UserView
from goqueue.security.acls import Acl, Operation, PatternType, ResourceType
from goqueue.security.principal import USER_NAME, valid_user_name

router = APIRouter(prefix="/v1/admin", tags=["security admin"], route_class=CheckedBodyRoute,
                   responses=AUTH_ERRORS, dependencies=[CLUSTER_ADMIN])

UserName = Annotated[str, Path(description="User name: 1-128 letters, digits and ._@-", pattern=USER_NAME.pattern)]


def _acl(spec: AclSpec) -> Acl:
    try:
        return Acl(spec.principal, ResourceType(spec.resource_type), spec.name, PatternType(spec.pattern),
                   Operation(spec.operation), spec.allow)
    except ValueError as exc:
        raise InvalidRequest(f"invalid ACL: {exc}") from None


def _spec(acl: Acl) -> AclSpec:
    return AclSpec(principal=acl.principal, resource_type=acl.resource_type.value, name=acl.name,
                   pattern=acl.pattern.value, operation=acl.operation.value, allow=acl.allow)


def _info(name: str, entry: UserView) -> UserInfo:
    quotas = entry.get("quotas", {})
    return UserInfo(name=name, iterations=entry["iterations"], producer_byte_rate=quotas.get("producer_byte_rate"),
                    consumer_byte_rate=quotas.get("consumer_byte_rate"))


@router.get("/users", response_model=list[UserInfo], summary="List users (with their quotas)",
            responses=error_responses())
async def list_users(broker: BrokerDep) -> list[UserInfo]:
    users = broker.membership.view.users
    return [_info(name, users[name]) for name in sorted(users)]


@router.put("/users/{name}", response_model=UserInfo, summary="Create a user, or give it a new password",
            responses=error_responses(METADATA_CHANGE))
async def upsert_user(name: UserName, credential: ScramCredentialSpec, broker: BrokerDep) -> UserInfo:
    if not valid_user_name(name):
        raise InvalidRequest(f"{name!r} cannot be a user name")
    await broker.membership.propose(commands.upsert_user(name, {
        "salt": base64.b64decode(credential.salt), "iterations": credential.iterations,
        "stored_key": base64.b64decode(credential.stored_key), "server_key": base64.b64decode(credential.server_key)}))
    return UserInfo(name=name, iterations=credential.iterations)


@router.put("/users/{name}/quotas", response_model=UserInfo, summary="Set a user's byte-rate quotas (absent: "
            "unlimited)", responses=error_responses(UserNotFound, METADATA_CHANGE))
async def set_user_quotas(name: UserName, quotas: UserQuotasSpec, broker: BrokerDep) -> UserInfo:
    try:
        await broker.membership.propose(commands.set_user_quotas(
            name, producer_byte_rate=quotas.producer_byte_rate, consumer_byte_rate=quotas.consumer_byte_rate))
    except MetadataConflict:
        raise UserNotFound(f"user {name!r} does not exist: create it first (goqueue-admin user create)") from None
    entry = broker.membership.view.users.get(name)
    if entry is None:  # deleted since: say so rather than answer quotas nobody holds
        raise UserNotFound(f"user {name!r} was deleted meanwhile")
    return _info(name, entry)


@router.delete("/users/{name}", status_code=204, summary="Delete a user (its sessions end; its ACLs stay)",
               responses=error_responses(UserNotFound, METADATA_CHANGE))
async def delete_user(name: UserName, broker: BrokerDep) -> Response:
    try:
        await broker.membership.propose(commands.delete_user(name))
    except MetadataConflict:
        raise UserNotFound(f"user {name!r} does not exist") from None
    return Response(status_code=204)


@router.get("/acls", response_model=list[AclSpec], summary="List ACLs (filtered by the given fields)",
            responses=error_responses())
async def list_acls(broker: BrokerDep, principal: str | None = None,
                    resource_type: Annotated[str | None, Query(alias="resourceType")] = None,
                    name: str | None = None) -> list[AclSpec]:
    found = sorted(acl_from_entry(entry) for entry in broker.membership.view.acls)
    return [_spec(acl) for acl in found if principal in (None, acl.principal)
            and resource_type in (None, acl.resource_type.value) and name in (None, acl.name)]


@router.post("/acls", response_model=AclSpec, status_code=201, summary="Add an ACL (adding one twice is no change)",
             responses=error_responses(METADATA_CHANGE))
async def add_acl(spec: AclSpec, broker: BrokerDep) -> AclSpec:
    acl = _acl(spec)
    with contextlib.suppress(MetadataConflict):  # it exists already: the state asked for holds
        await broker.membership.propose(commands.add_acl(acl_entry(acl)))
    return _spec(acl)


@router.post("/acls/remove", status_code=204, summary="Remove the ACL with exactly these fields",
             responses=error_responses(AclNotFound, METADATA_CHANGE))
async def remove_acl(spec: AclSpec, broker: BrokerDep) -> Response:
    try:
        await broker.membership.propose(commands.remove_acl(acl_entry(_acl(spec))))
    except MetadataConflict:
        raise AclNotFound(f"no such ACL: {spec.principal} {spec.operation} on {spec.resource_type} {spec.name!r} "
                          f"({spec.pattern}, {'allow' if spec.allow else 'deny'})") from None
    return Response(status_code=204)
