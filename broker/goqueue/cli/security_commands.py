"""`goqueue-admin user …` and `goqueue-admin acl …`: the users and ACLs kept in the cluster's metadata.

A new user's password comes from a file, standard input or a prompt — never from the command line, which other local
users can read — and only the salted SCRAM keys computed from it here are sent to the broker.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from goqueue.cli.render import print_table
from goqueue.cli.runtime import context, read_secret
from goqueue.errors import InvalidRequest
from goqueue.models import AclSpec

user_app = typer.Typer(help="Users who authenticate with SCRAM-SHA-512 (cluster admins only).", no_args_is_help=True)
acl_app = typer.Typer(help="ACLs: which principal may do what to which topic, group or the cluster.",
                      no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The user name.")]
PrincipalOption = Annotated[str, typer.Option("--principal", "-p", help="User:<name>, or User:* for everyone.")]
ResourceOption = Annotated[str, typer.Option("--resource-type", "-r", help="topic, group or cluster.")]
ResourceNameOption = Annotated[str, typer.Option(
    "--name", "-n", help="The topic or group name, a prefix with --prefixed, or * for all (cluster: *).")]
OperationOption = Annotated[str, typer.Option(
    "--operation", help="topic: produce consume describe alter delete create; group: consume describe alter reset "
    "delete; cluster: admin; or all.")]
PrefixedOption = Annotated[bool, typer.Option("--prefixed", help="--name is a prefix of the names it covers.")]
DenyOption = Annotated[bool, typer.Option("--deny", help="A deny entry (it wins over every allow).")]


def _new_password(password_file: Path | None, stdin: bool) -> str:
    if password_file is not None and stdin:
        raise InvalidRequest("give the password one way: --new-password-file or --password-stdin")
    if password_file is not None:
        return read_secret(password_file, "--new-password-file")
    if stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise InvalidRequest("--password-stdin read an empty line")
        return password
    if not sys.stdin.isatty():
        raise InvalidRequest("no terminal to ask for the password: use --new-password-file or --password-stdin")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("create")
def user_create(ctx: typer.Context, name: NameArgument,
                new_password_file: Annotated[Path | None, typer.Option(
                    "--new-password-file", help="Read the new user's password from this file (its first line).")]
                = None,
                password_stdin: Annotated[bool, typer.Option(
                    "--password-stdin", help="Read the new user's password from standard input.")] = False) -> None:
    """Create a user, or give an existing one a new password (which ends its sessions)."""
    password = _new_password(new_password_file, password_stdin)
    cli = context(ctx)
    with cli.client() as client:
        created = client.upsert_user(name, password)
    if not cli.emit(created):
        print(f"user {created.name} saved (SCRAM-SHA-512, {created.iterations} iterations)")


@user_app.command("quota")
def user_quota(ctx: typer.Context, name: NameArgument,
               producer_byte_rate: Annotated[int | None, typer.Option(
                   "--producer-byte-rate", min=1, help="Bytes/s the user may produce to each broker.")] = None,
               consumer_byte_rate: Annotated[int | None, typer.Option(
                   "--consumer-byte-rate", min=1, help="Bytes/s the user may fetch from each broker.")] = None,
               ) -> None:
    """Set a user's byte-rate quotas; a rate not given is unlimited (no option: remove both)."""
    cli = context(ctx)
    with cli.client() as client:
        saved = client.set_user_quotas(name, producer_byte_rate, consumer_byte_rate)
    if not cli.emit(saved):
        print(f"user {saved.name}: produce {_rate(saved.producer_byte_rate)}, consume "
              f"{_rate(saved.consumer_byte_rate)}")


def _rate(byte_rate: int | None) -> str:
    return "unlimited" if byte_rate is None else f"{byte_rate} B/s"


@user_app.command("delete")
def user_delete(ctx: typer.Context, name: NameArgument) -> None:
    """Delete a user: its sessions end at once; its ACLs stay (for a user created again under that name)."""
    with context(ctx).client() as client:
        client.delete_user(name)
    print(f"user {name} deleted")


@user_app.command("list")
def user_list(ctx: typer.Context) -> None:
    """Users of the cluster (names, SCRAM iterations and quotas; never a secret)."""
    cli = context(ctx)
    with cli.client() as client:
        users = client.list_users()
    if not cli.emit(users):
        print_table(["NAME", "MECHANISM", "ITERATIONS", "PRODUCE QUOTA", "CONSUME QUOTA"],
                    [[u.name, u.mechanism, u.iterations, _rate(u.producer_byte_rate), _rate(u.consumer_byte_rate)]
                     for u in users])


def _spec(principal: str, resource_type: str, name: str, operation: str, prefixed: bool, deny: bool) -> AclSpec:
    return AclSpec.model_validate({"principal": principal, "resourceType": resource_type, "name": name,
                                   "pattern": "prefixed" if prefixed else "literal", "operation": operation,
                                   "allow": not deny})


@acl_app.command("add")
def acl_add(ctx: typer.Context, principal: PrincipalOption, resource_type: ResourceOption,
            name: ResourceNameOption, operation: OperationOption, prefixed: PrefixedOption = False,
            deny: DenyOption = False) -> None:
    """Allow (or with --deny, deny) a principal one operation on a resource."""
    with context(ctx).client() as client:
        acl = client.add_acl(_spec(principal, resource_type, name, operation, prefixed, deny))
    print(f"ACL added: {'deny' if not acl.allow else 'allow'} {acl.principal} {acl.operation} on "
          f"{acl.resource_type} {acl.name!r} ({acl.pattern})")


@acl_app.command("remove")
def acl_remove(ctx: typer.Context, principal: PrincipalOption, resource_type: ResourceOption,
               name: ResourceNameOption, operation: OperationOption, prefixed: PrefixedOption = False,
               deny: DenyOption = False) -> None:
    """Remove the ACL with exactly these fields (`acl list` shows them)."""
    with context(ctx).client() as client:
        client.remove_acl(_spec(principal, resource_type, name, operation, prefixed, deny))
    print("ACL removed")


@acl_app.command("list")
def acl_list(ctx: typer.Context,
             principal: Annotated[str | None, typer.Option("--principal", "-p", help="Only this principal's.")]
             = None,
             resource_type: Annotated[str | None, typer.Option("--resource-type", "-r", help="Only this type.")]
             = None,
             name: Annotated[str | None, typer.Option("--name", "-n", help="Only entries naming it.")] = None,
             ) -> None:
    """The ACLs, optionally filtered."""
    cli = context(ctx)
    with cli.client() as client:
        acls = client.list_acls(principal, resource_type, name)
    if not cli.emit(acls):
        print_table(["PRINCIPAL", "PERMISSION", "OPERATION", "RESOURCE", "NAME", "PATTERN"],
                    [[a.principal, "allow" if a.allow else "deny", a.operation, a.resource_type, a.name, a.pattern]
                     for a in acls])
