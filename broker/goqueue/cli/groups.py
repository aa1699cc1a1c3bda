"""`goqueue-cli group list | describe | delete | reset-offset`: consumer groups for people on call."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from goqueue.cli.options import resolve_name
from goqueue.cli.render import print_fields, print_table
from goqueue.cli.runtime import context
from goqueue.errors import GroupHasMembers
from goqueue.models import OffsetResetRequest, ResetTarget

group_app = typer.Typer(help="List, describe and delete consumer groups; reset their offsets.", no_args_is_help=True)

GroupArgument = Annotated[str | None, typer.Argument(metavar="GROUP", help="Group name.", show_default=False)]
GroupOption = Annotated[str | None, typer.Option("--group", "-g", help="The group (same as GROUP; kept for "
                                                 "scripts).", show_default=False)]


def _group(argument: str | None, flag_value: str | None) -> str:
    return resolve_name(argument, flag_value, what="group", flag="--group")


@group_app.command("list")
def group_list(ctx: typer.Context) -> None:
    """List consumer groups with their mode, state, members, total lag and inflight messages."""
    cli = context(ctx)
    with cli.client() as client:
        groups = client.list_groups()
    if cli.emit(groups):
        return
    print_table(["GROUP", "MODE", "STATE", "MEMBERS", "TOPICS", "LAG", "INFLIGHT"],
                [[g.name, g.mode.value, g.state.value, g.members, ",".join(g.topics), g.lag, g.inflight]
                 for g in groups])


@group_app.command("describe")
def group_describe(ctx: typer.Context, group: GroupArgument = None, group_option: GroupOption = None) -> None:
    """Members (with when each expires unless heard from), and per partition the committed offset, end offset
    and lag."""
    cli = context(ctx)
    name = _group(group, group_option)
    with cli.client() as client:
        info = client.describe_group(name)
    if cli.emit(info):
        return
    config = info.config
    print_fields({
        "Group": info.name, "Mode": info.mode.value, "State": info.state.value,
        "Coordinator": "-" if info.coordinator is None else f"broker {info.coordinator}",
        "Generation": info.generation if info.mode.value == "ordered" else "-",
        "Members": len(info.members), "Lag": sum(o.lag or 0 for o in info.offsets),
        "Inflight": f"{info.inflight} / {info.inflight_capacity} capacity",
        "Visibility timeout": f"{config.visibility_timeout_s:g}s", "Max deliveries": config.max_deliveries,
        "Dead letters": config.dead_letter_topic or "<topic>.dlq",
    })
    print()
    print_table(["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "INFLIGHT"],
                [[o.topic, o.partition, "-" if o.committed is None else o.committed, o.end_offset,
                  "-" if o.lag is None else o.lag, o.inflight] for o in info.offsets], title="Offsets")
    print()
    now_ms = datetime.now(UTC).timestamp() * 1000
    print_table(["MEMBER", "CLIENT", "HOST", "ASSIGNED", "LAST HEARTBEAT", "EXPIRES"],
                [[m.member_id, m.client_id, m.host,
                  ",".join(f"{a.topic}/{a.partition}" for a in m.assignments) or "-",
                  f"{max(0.0, (now_ms - m.last_heartbeat_ms) / 1000):.1f}s ago", _expiry(m.expires_at_ms, now_ms)]
                 for m in info.members], title="Members")


@group_app.command("delete")
def group_delete(
    ctx: typer.Context,
    group: GroupArgument = None,
    group_option: GroupOption = None,
    force: Annotated[bool, typer.Option("--force", help="Even while members are live: they lose their partitions "
                                        "or leases and their next request fails.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a group with its committed offsets and pause. Refused while it has live members, unless --force.
    Asks first when run on a terminal, unless --yes."""
    cli = context(ctx)
    name = _group(group, group_option)
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete group {name} and its committed offsets?", abort=True)
    with cli.client() as client:
        try:
            client.delete_group(name, force=force)
        except GroupHasMembers as exc:  # the broker's words, plus the CLI's way to force it
            raise GroupHasMembers(f"{exc.message} (--force)", **exc.details) from exc
    if not cli.emit({"deleted": name}):
        print(f"group {name} deleted")


def _expiry(expires_at_ms: int | None, now_ms: float) -> str:
    """When a member that stops being heard from is removed (a member that left is gone at once)."""
    if expires_at_ms is None:
        return "-"  # a broker before this field
    left_s = (expires_at_ms - now_ms) / 1000
    return f"in {left_s:.1f}s" if left_s > 0 else "now (at the next expiry check)"


def _target(to_earliest: bool, to_latest: bool, to_offset: int | None, to_datetime: str | None,
            shift_by: int | None) -> tuple[ResetTarget, dict[str, int]]:
    chosen = [(ResetTarget.EARLIEST, {}) if to_earliest else None, (ResetTarget.LATEST, {}) if to_latest else None,
              (ResetTarget.OFFSET, {"offset": to_offset}) if to_offset is not None else None,
              (ResetTarget.DATETIME, {"timestamp_ms": _parse_datetime_ms(to_datetime)})
              if to_datetime is not None else None,
              (ResetTarget.SHIFT, {"shift_by": shift_by}) if shift_by is not None else None]
    picked = [c for c in chosen if c is not None]
    if len(picked) != 1:
        raise typer.BadParameter("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, "
                                 "--shift-by")
    return picked[0]


def _parse_datetime_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not ISO 8601 (e.g. 2026-01-31T12:00:00Z)",
                                 param_hint="--to-datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a time without zone is UTC, as in the broker's logs
    return int(moment.timestamp() * 1000)


@group_app.command("reset-offset")
def group_reset_offset(
    ctx: typer.Context,
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic whose offsets move.")],
    group_argument: GroupArgument = None,
    group_option: GroupOption = None,
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="The oldest retained record.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="After the newest record (skip backlog).")] = False,
    to_offset: Annotated[int | None, typer.Option("--to-offset", min=0, help="This offset.")] = None,
    to_datetime: Annotated[str | None, typer.Option(
        "--to-datetime", help="The first record at or after this ISO 8601 time (UTC when no zone).")] = None,
    shift_by: Annotated[int | None, typer.Option("--shift-by", help="Move by N (negative: back).")] = None,
    partition: Annotated[int | None, typer.Option("--partition", "-p", min=0, help="Only this partition.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Even while members are live (they are rebalanced or "
                                        "lose their leases).")] = False,
) -> None:
    """Move a group's committed offsets. Refused while the group has live members, unless --force."""
    cli = context(ctx)
    group = _group(group_argument, group_option)
    target, value = _target(to_earliest, to_latest, to_offset, to_datetime, shift_by)
    request = OffsetResetRequest.model_validate({
        "topic": topic, "partition": partition, "to": target, "dry_run": dry_run, "force": force, **value})
    with cli.client() as client:
        plan = client.reset_offsets(group, request)
    if cli.emit(plan):
        return
    print(f"dry run: group {group} would move as follows (nothing changed)" if plan.dry_run
          else f"group {group}: offsets reset")
    print_table(["TOPIC", "PARTITION", "CURRENT", "NEW", ""],
                [[e.topic, e.partition, "-" if e.current is None else e.current, e.target,
                  "clamped to the log" if e.clamped else ""] for e in plan.partitions])
