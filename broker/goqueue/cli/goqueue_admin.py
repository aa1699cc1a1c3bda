"""`goqueue-admin`: broker health, metrics, storage, consumers, metadata backup and cluster read-outs for on-call
engineers."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError

from goqueue.cli import runtime
from goqueue.cli.options import NameUsageError, resolve_name
from goqueue.cli.progress import WaitDisplay
from goqueue.cli.render import Output, human_bytes, print_data, print_fields, print_table
from goqueue.cli.runtime import (
    CliContext,
    OutputOption,
    PasswordFileOption,
    PasswordOption,
    RequestTimeoutOption,
    ServerOption,
    UserOption,
    context,
)
from goqueue.cli.security_commands import acl_app, user_app
from goqueue.cli.version import VersionOption, version
from goqueue.client.http import GoQueueClient
from goqueue.errors import InvalidRequest
from goqueue.models import ClusterMember, MetadataBackup

app = typer.Typer(help="GoQueue administration: health, metrics, storage, consumers, metadata, cluster.",
                  no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)
storage_app = typer.Typer(help="Storage read-outs.", no_args_is_help=True)
inflight_app = typer.Typer(help="Unacked messages of shared groups.", no_args_is_help=True)
consumer_app = typer.Typer(help="Pause and resume deliveries (per group or all).", no_args_is_help=True)
backup_app = typer.Typer(help="Back up metadata: topics, settings, groups and offsets.", no_args_is_help=True)
restore_app = typer.Typer(help="Restore metadata from a backup.", no_args_is_help=True)
cluster_app = typer.Typer(help="Cluster membership, leadership and replica placement.", no_args_is_help=True)
REPLICATION_POLL_S = 0.5
replication_app = typer.Typer(help="Replica and in-sync replica state per partition.", no_args_is_help=True)
for sub, sub_name in ((storage_app, "storage"), (inflight_app, "inflight"), (consumer_app, "consumer"),
                      (backup_app, "backup"), (restore_app, "restore"), (cluster_app, "cluster"),
                      (replication_app, "replication"), (user_app, "user"), (acl_app, "acl")):
    app.add_typer(sub, name=sub_name)


@app.callback()
def _root(ctx: typer.Context, server: str = ServerOption, output: Output = OutputOption,
          request_timeout: float = RequestTimeoutOption, user: str | None = UserOption,
          password: str | None = PasswordOption, password_file: Path | None = PasswordFileOption,
          _version: bool = VersionOption) -> None:
    ctx.obj = CliContext(server=server, output=output, request_timeout_s=request_timeout, user=user,
                         password=password, password_file=password_file)


app.command("version")(version)


GroupArgument = Annotated[str | None, typer.Argument(metavar="GROUP", help="One group.", show_default=False)]
GroupOption = Annotated[str | None, typer.Option("--group", "-g", help="One group (same as GROUP; kept for "
                                                 "scripts).", show_default=False)]


def _optional_group(argument: str | None, flag_value: str | None) -> str | None:
    if argument is None and flag_value is None:
        return None
    return resolve_name(argument, flag_value, what="group", flag="--group")


@app.command("health")
def health(ctx: typer.Context) -> None:
    """Is this broker healthy? Exits 1 when it is not."""
    cli = context(ctx)
    with cli.client() as client:
        status = client.health()
    if not cli.emit(status):
        print_fields({"Status": status.status, "Broker": status.broker_id, "Version": status.version,
                      "Uptime": f"{status.uptime_s:.0f}s", **{k.capitalize(): v for k, v in status.checks.items()}})
    if status.status != "healthy":
        raise typer.Exit(1)


@app.command("metrics")
def metrics(ctx: typer.Context) -> None:
    """Print the broker's Prometheus metrics (pipe through grep, as the runbook does)."""
    with context(ctx).client() as client:
        sys.stdout.write(client.metrics_text())


@storage_app.command("stats")
def storage_stats(ctx: typer.Context) -> None:
    """Disk usage of the data volume, per topic and per partition."""
    cli = context(ctx)
    with cli.client() as client:
        stats = client.storage_stats()
    if cli.emit(stats):
        return
    print_fields({"Data dir": stats.data_dir,
                  "Volume": f"{human_bytes(stats.volume_used_bytes)} used of {human_bytes(stats.volume_total_bytes)}"
                            f" ({stats.volume_used_percent:.1f}%), {human_bytes(stats.volume_free_bytes)} free",
                  "Logs": human_bytes(stats.log_bytes)})
    print()
    print_table(["TOPIC", "PARTITION", "SIZE", "SEGMENTS", "START", "END"],
                [[p.topic, p.partition, human_bytes(p.size_bytes), p.segments, p.start_offset, p.end_offset]
                 for p in stats.partitions])


# -- consumers -------------------------------------------------------------------------------------------------

@inflight_app.command("list")
def inflight_list(
    ctx: typer.Context,
    group_argument: Annotated[str | None, typer.Argument(metavar="GROUP", help="Only this group.",
                                                         show_default=False)] = None,
    group_option: GroupOption = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Most messages to show.")] = 1000,
) -> None:
    """Messages delivered and not yet acked: leased to a consumer, or waiting for redelivery."""
    cli = context(ctx)
    group = _optional_group(group_argument, group_option)
    with cli.client() as client:
        listing = client.inflight(group, limit)
    if cli.emit(listing):
        return
    now_ms = time.time() * 1000
    print_table(["GROUP", "TOPIC", "PARTITION", "OFFSET", "STATE", "CONSUMER", "DELIVERIES", "DEADLINE"],
                [[m.group, m.topic, m.partition, m.offset, m.state, m.consumer_id or "-", m.delivery_count,
                  f"in {(m.deadline_ms - now_ms) / 1000:.1f}s" if m.deadline_ms > now_ms else "due"]
                 for m in listing.messages])
    shown = f" (showing {len(listing.messages)})" if listing.truncated else ""
    print(f"{listing.total} unacked messages{shown}")


def _pause_target(all_groups: bool, argument: str | None, flag_value: str | None) -> str | None:
    group = _optional_group(argument, flag_value)
    if all_groups == (group is not None):
        raise NameUsageError("give exactly one of GROUP or --all")
    return group


@consumer_app.command("pause")
def consumer_pause(
    ctx: typer.Context,
    group_argument: GroupArgument = None,
    all_groups: Annotated[bool, typer.Option("--all", help="Every group, including groups created later.")] = False,
    group_option: GroupOption = None,
) -> None:
    """Stop deliveries; consumers see a paused state (not errors) and keep their sessions and leases."""
    cli = context(ctx)
    target = _pause_target(all_groups, group_argument, group_option)
    with cli.client() as client:
        result = client.pause(target)
    if not cli.emit(result):
        print("all consumer groups paused" if result.all else f"group {target} paused")


@consumer_app.command("resume")
def consumer_resume(
    ctx: typer.Context,
    group_argument: GroupArgument = None,
    all_groups: Annotated[bool, typer.Option("--all", help="Every group (also lifts per-group pauses).")] = False,
    group_option: GroupOption = None,
) -> None:
    """Resume deliveries."""
    cli = context(ctx)
    target = _pause_target(all_groups, group_argument, group_option)
    with cli.client() as client:
        result = client.resume(target)
    if cli.emit(result):
        return
    if result.all:
        print("all consumer groups resumed")
    else:
        print(f"group {target} resumed" + (" (but all groups are still paused)" if result.paused else ""))


# -- metadata --------------------------------------------------------------------------------------------------

@backup_app.command("metadata")
def backup_metadata(ctx: typer.Context) -> None:
    """Print a backup of topics, their settings, groups and committed offsets (redirect it to a file): JSON, or
    YAML with -o yaml; restore reads either."""
    cli = context(ctx)
    with cli.client() as client:
        backup = client.backup_metadata()
    if cli.output is Output.YAML:
        print_data(backup, Output.YAML)
    else:  # a backup is a file for restore, never a table
        print(backup.model_dump_json(by_alias=True, indent=2))


@restore_app.command("metadata")
def restore_metadata(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A file from `goqueue-admin backup metadata` ('-' for stdin).")],
) -> None:
    """Create missing topics, grow partitions, set settings, groups and offsets from a backup, JSON or YAML
    (idempotent)."""
    cli = context(ctx)
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {file}: {exc.strerror}") from exc
    try:
        backup = _parse_backup(text)
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{file} is neither JSON nor YAML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"{file} is not a metadata backup: {where + ': ' if where else ''}{first['msg']}") \
            from exc
    with cli.client() as client:
        report = client.restore_metadata(backup)
    if cli.emit(report):
        return
    print_fields({"Topics created": ", ".join(report.topics_created) or "-",
                  "Topics updated": ", ".join(report.topics_updated) or "-",
                  "Topics unchanged": len(report.topics_unchanged),
                  "Groups restored": ", ".join(report.groups_restored) or "-",
                  "Offsets restored": report.offsets_restored})
    for line in report.skipped:
        print(f"skipped: {line}", file=sys.stderr)


def _parse_backup(text: str) -> MetadataBackup:
    """JSON as `backup metadata` prints it (parsed fast), else YAML (`backup metadata -o yaml`)."""
    if text.lstrip().startswith("{"):
        return MetadataBackup.model_validate_json(text)
    return MetadataBackup.model_validate(yaml.safe_load(text))


# -- cluster ---------------------------------------------------------------------------------------------------

@cluster_app.command("status")
def cluster_status(ctx: typer.Context) -> None:
    """Leader, brokers and partition health. Exits 1 when the cluster is not healthy."""
    cli = context(ctx)
    with cli.client() as client:
        status = client.cluster_status()
    if not cli.emit(status):
        print_fields({"Mode": status.mode, "Healthy": "yes" if status.healthy else "NO",
                      "Leader": f"broker {status.leader.leader} ({status.leader.host})",
                      "Brokers": f"{status.live_brokers}/{status.brokers} up", "Topics": status.topics,
                      "Partitions": status.partitions, "Offline partitions": status.offline_partitions,
                      "Under-replicated partitions": status.under_replicated_partitions})
        print()
        _print_members(status.members)
    if not status.healthy:
        raise typer.Exit(1)


def _print_members(members: list[ClusterMember]) -> None:
    print_table(["BROKER", "HOST", "HTTP", "GRPC", "RAFT", "ROLE", "STATUS", "ZONE"],
                [[m.broker_id, m.host, m.http_port, m.grpc_port, m.raft_port, m.role, m.status, m.zone or "-"]
                 for m in members])


@cluster_app.command("members")
def cluster_members(ctx: typer.Context) -> None:
    """Every broker with its addresses, role and status."""
    cli = context(ctx)
    with cli.client() as client:
        members = client.cluster_members()
    if not cli.emit(members):
        _print_members(members)


@cluster_app.command("leader")
def cluster_leader(ctx: typer.Context) -> None:
    """The metadata leader."""
    cli = context(ctx)
    with cli.client() as client:
        leader = client.cluster_leader()
    if not cli.emit(leader):
        print_fields({"Leader": leader.leader, "Host": leader.host, "Term": leader.term})


@cluster_app.command("rebalance")
def cluster_rebalance(
    ctx: typer.Context,
    wait: Annotated[bool, typer.Option("--wait", help="Return once every partition is fully in sync again (the "
                                       "new replicas have copied their data).")] = False,
    wait_timeout: Annotated[float, typer.Option("--wait-timeout", min=0.1, help="Seconds --wait waits before "
                                                "exiting 1.")] = 600.0,
) -> None:
    """Spread replicas evenly over all brokers (after adding brokers): partitions whose replica set differs from
    an even spread are reassigned; the new replicas copy from the leaders while the old ones keep serving."""
    cli = context(ctx)
    with cli.client() as client:
        answer = client.request("POST", "/v1/admin/cluster/rebalance").json()
        moved = int(answer["moved"])
        caught_up = _wait_in_sync(cli, client, wait_timeout) if wait and moved else None
    if not cli.emit({"moved": moved, "reasons": answer.get("reasons", []),
                     **({} if caught_up is None else {"inSync": caught_up})}):
        print(_rebalance_summary(moved, caught_up, wait_timeout))
    if caught_up is False:
        raise typer.Exit(1)


def _rebalance_summary(moved: int, caught_up: bool | None, wait_timeout_s: float) -> str:
    if not moved:
        return "replicas already spread over all brokers: nothing moved"
    if caught_up is None:
        return (f"{moved} partitions reassigned; their new replicas copy in the background "
                "(goqueue-admin replication status)")
    return f"{moved} partitions reassigned; " + ("all in sync" if caught_up else
                                                  f"not all in sync after {wait_timeout_s:g}s")


def _wait_in_sync(cli: CliContext, client: GoQueueClient, timeout_s: float) -> bool:
    """Poll replication status until nothing is under-replicated, with the count on the wait display."""
    deadline = time.monotonic() + timeout_s
    with WaitDisplay(not cli.structured, "waiting for the new replicas to catch up") as display:
        while True:
            status = client.replication_status()
            if not status.under_replicated and not status.offline:
                return True
            if time.monotonic() >= deadline:
                return False
            display.update(f"{status.under_replicated} of {len(status.partitions)} partitions under-replicated; "
                           "new replicas are copying")
            time.sleep(REPLICATION_POLL_S)


@replication_app.command("status")
def replication_status(ctx: typer.Context) -> None:
    """Leader, replicas, in-sync replicas and offsets per partition. Exits 1 when any is under-replicated."""
    cli = context(ctx)
    with cli.client() as client:
        status = client.replication_status()
    if not cli.emit(status):
        print_table(["TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "HWM", "LEO", "STATUS"],
                    [[p.topic, p.partition, p.leader if p.leader is not None else "none", p.leader_epoch,
                      ",".join(map(str, p.replicas)), ",".join(map(str, p.isr)), p.high_watermark,
                      p.log_end_offset, "UNDER-REPLICATED" if p.under_replicated else "ok"]
                     for p in status.partitions])
        print(f"{len(status.partitions)} partitions, {status.under_replicated} under-replicated, "
              f"{status.offline} offline")
    if status.under_replicated:
        raise typer.Exit(1)


def main() -> None:
    runtime.main(app, "goqueue-admin")



if __name__ == "__main__":
    main()
