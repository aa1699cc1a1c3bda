"""`goqueue-admin`: broker health, metrics, storage, consumers, metadata backup, cluster read-outs and replica
reassignment for on-call engineers."""

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
    CaOption,
    CertOption,
    CliContext,
    KeyOption,
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
from goqueue.models import (
    ClusterMember,
    MetadataBackup,
    ReassignmentGoals,
    ReassignmentPlan,
    ReassignmentProgress,
    ReplicaMove,
)

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
partition_app = typer.Typer(help="Move partition replicas and change replication factors.", no_args_is_help=True)
for sub, sub_name in ((storage_app, "storage"), (inflight_app, "inflight"), (consumer_app, "consumer"),
                      (backup_app, "backup"), (restore_app, "restore"), (cluster_app, "cluster"),
                      (replication_app, "replication"), (user_app, "user"), (acl_app, "acl"),
                      (partition_app, "partition")):
    app.add_typer(sub, name=sub_name)


@app.callback()
def _root(ctx: typer.Context, server: str = ServerOption, output: Output = OutputOption,
          request_timeout: float = RequestTimeoutOption, user: str | None = UserOption,
          password: str | None = PasswordOption, password_file: Path | None = PasswordFileOption,
          ca: Path | None = CaOption, cert: Path | None = CertOption, key: Path | None = KeyOption,
          _version: bool = VersionOption) -> None:
    ctx.obj = CliContext(server=server, output=output, request_timeout_s=request_timeout, user=user,
                         password=password, password_file=password_file, ca_file=ca, cert_file=cert, key_file=key)


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


ThrottleOption = Annotated[str | None, typer.Option(
    "--throttle", help="Bytes/s each broker copies new replicas at, until the last move completes (10MiB/s); "
                       "default: unthrottled.", show_default=False)]
WaitTimeoutOption = Annotated[float, typer.Option("--wait-timeout", min=0.1, help="Seconds --wait waits before "
                                                  "exiting 1.")]


@cluster_app.command("rebalance")
def cluster_rebalance(
    ctx: typer.Context,
    wait: Annotated[bool, typer.Option("--wait", help="Return once every move has completed (the new replicas "
                                       "copied their data and the old ones left).")] = False,
    wait_timeout: WaitTimeoutOption = 600.0,
    throttle: ThrottleOption = None,
) -> None:
    """Even replicas and preferred leaders across brokers and zones (after adding brokers): the moves of
    `partition reassign --plan --balance`, executed at once. New replicas copy first; the old ones keep serving
    until the new ones are in sync."""
    cli = context(ctx)
    goals = _goals(balance=True, drain=[], add=[], factors=[], throttle=throttle)
    with cli.client() as client:
        plan = client.plan_reassignment(goals)
        started = client.execute_reassignment(plan.moves, goals.throttle) if plan.moves else None
        moved = started.started if started else 0
        reasons = [*plan.reasons, *(started.reasons if started else [])]
        done = _wait_moves(cli, client, plan.moves, wait_timeout) if wait and moved else None
    if not cli.emit({"moved": moved, "reasons": reasons, **({} if done is None else {"inSync": done})}):
        print(_rebalance_summary(moved, done, wait_timeout))
        for reason in reasons:
            print(f"not moved: {reason}", file=sys.stderr)
    if done is False:
        raise typer.Exit(1)


def _rebalance_summary(moved: int, done: bool | None, wait_timeout_s: float) -> str:
    if not moved:
        return "replicas already spread over all brokers: nothing moved"
    if done is None:
        return (f"{moved} partitions reassigned; their new replicas copy in the background "
                "(goqueue-admin partition reassign --verify, or --wait)")
    return f"{moved} partitions reassigned; " + ("all moved and in sync" if done else
                                                  f"not all moved after {wait_timeout_s:g}s")


# -- partition reassignment ------------------------------------------------------------------------------------

@partition_app.command("reassign")
def partition_reassign(
    ctx: typer.Context,
    plan: Annotated[bool, typer.Option("--plan", help="Propose moves for the goal flags; -o json prints the file "
                                       "--execute takes.")] = False,
    execute: Annotated[str | None, typer.Option("--execute", metavar="FILE", help="Execute a plan file ('-': "
                                                "stdin).", show_default=False)] = None,
    verify: Annotated[str | None, typer.Option("--verify", metavar="FILE", help="Exit 0 once every move of the plan "
                                               "file has completed, 1 while any has not.", show_default=False)] = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="Send every moving partition back to its original "
                                         "replicas.")] = False,
    balance: Annotated[bool, typer.Option("--balance", help="Goal: even replicas and leaders across brokers and "
                                          "zones.")] = False,
    drain: Annotated[list[int] | None, typer.Option("--drain-broker", metavar="ID", help="Goal: move every replica "
                                                    "off this broker (repeatable).", show_default=False)] = None,
    add: Annotated[list[int] | None, typer.Option("--add-broker", metavar="ID", help="Goal: spread replicas onto "
                                                  "this new broker (repeatable).", show_default=False)] = None,
    factors: Annotated[list[str] | None, typer.Option("--replication-factor", metavar="TOPIC=N", help="Goal: change "
                                                      "a topic's replication factor (repeatable).",
                                                      show_default=False)] = None,
    throttle: ThrottleOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="With --execute: return once every move has completed.")
                    ] = False,
    wait_timeout: WaitTimeoutOption = 600.0,
) -> None:
    """Move partition replicas (Kafka's kafka-reassign-partitions): --plan proposes moves for goals with the bytes
    to copy and the time they take at --throttle; --execute FILE starts them; --verify FILE says whether they are
    done; --cancel sends moving partitions back. New replicas always copy first and the old ones leave last."""
    cli = context(ctx)
    modes = [name for name, on in (("--plan", plan), ("--execute", execute is not None),
                                   ("--verify", verify is not None), ("--cancel", cancel)) if on]
    if len(modes) != 1:
        raise NameUsageError("give exactly one of --plan, --execute FILE, --verify FILE, --cancel")
    with cli.client() as client:
        if plan:
            proposal = client.plan_reassignment(_goals(balance, drain or [], add or [], factors or [], throttle))
            if not cli.emit(proposal):
                _print_plan(proposal)
        elif execute is not None:
            _execute(cli, client, _read_plan(execute).moves, _goals(False, [], [], [], throttle).throttle,
                     wait_timeout if wait else None)
        elif verify is not None:
            _verify(cli, client, _read_plan(verify).moves)
        else:
            result = client.cancel_reassignment()
            if not cli.emit(result):
                print(f"{result.cancelled} moves cancelled")
                for reason in result.reasons:
                    print(f"not cancelled: {reason}", file=sys.stderr)


def _execute(cli: CliContext, client: GoQueueClient, moves: list[ReplicaMove], throttle: int | None,
             wait_timeout: float | None) -> None:
    started = client.execute_reassignment(moves, throttle)
    done = _wait_moves(cli, client, moves, wait_timeout) if wait_timeout is not None and started.started else None
    if not cli.emit({**started.model_dump(by_alias=True), **({} if done is None else {"done": done})}):
        print(f"{started.started} of {len(moves)} moves started" + ("" if done is None else
              "; all done" if done else f"; not all done after {wait_timeout:g}s"))
        for reason in started.reasons:
            print(f"not started: {reason}", file=sys.stderr)
    if done is False:
        raise typer.Exit(1)


def _verify(cli: CliContext, client: GoQueueClient, moves: list[ReplicaMove]) -> None:
    pending = _pending(client, moves, client.reassignment_progress())
    if not cli.emit({"done": not pending, "pending": pending}):
        print("every move has completed" if not pending else "\n".join(pending))
    if pending:
        raise typer.Exit(1)


def _goals(balance: bool, drain: list[int], add: list[int], factors: list[str],
           throttle: str | None) -> ReassignmentGoals:
    wanted: dict[str, int] = {}
    for item in factors:
        topic, _, count = item.partition("=")
        if not topic or not count.strip().isdigit():
            raise NameUsageError(f"--replication-factor takes TOPIC=N, not {item!r}")
        wanted[topic] = int(count)
    try:
        return ReassignmentGoals.model_validate({"balance": balance, "drainBrokers": drain, "addBrokers": add,
                                                 "replicationFactor": wanted, "throttle": throttle})
    except ValidationError as exc:
        raise NameUsageError(_first_error(exc)) from exc


def _read_plan(file: str) -> ReassignmentPlan:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {file}: {exc.strerror}") from exc
    what = f"{file} is not a plan from `goqueue-admin partition reassign --plan -o json`"
    try:
        return ReassignmentPlan.model_validate(yaml.safe_load(text))  # JSON is YAML
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{what}: {str(exc).splitlines()[0]}") from exc
    except ValidationError as exc:
        raise InvalidRequest(f"{what}: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _print_plan(plan: ReassignmentPlan) -> None:
    print_table(["TOPIC", "PARTITION", "FROM", "TO", "COPY"],
                [[m.topic, m.partition, ",".join(map(str, m.replicas)), ",".join(map(str, m.target)),
                  human_bytes(m.bytes_to_copy)] for m in plan.moves])
    estimate = "" if plan.estimated_s is None else \
        f", about {plan.estimated_s:.0f}s at {human_bytes(plan.throttle or 0)}/s"
    print(f"{len(plan.moves)} moves, {human_bytes(plan.bytes_to_copy)} to copy{estimate}")
    for reason in plan.reasons:
        print(f"note: {reason}", file=sys.stderr)


def _pending(client: GoQueueClient, moves: list[ReplicaMove], progress: ReassignmentProgress) -> list[str]:
    """The moves not completed yet, one line each."""
    moving = {(p.topic, p.partition): p for p in progress.partitions}
    pending = []
    replicas: dict[str, dict[int, list[int]]] = {}
    for move in moves:
        now = moving.get((move.topic, move.partition))
        if now is not None:
            pending.append(f"{move.topic}/{move.partition}: moving to {now.target}, copying to {now.copying or '-'}")
            continue
        if move.topic not in replicas:
            info = client.describe_topic(move.topic)
            replicas[move.topic] = {p.partition: p.replicas for p in info.partition_details}
        current = replicas[move.topic].get(move.partition)
        if current != move.target:
            pending.append(f"{move.topic}/{move.partition}: replicas {current}, not {move.target} (cancelled, or "
                           "not started)")
    return pending


def _wait_moves(cli: CliContext, client: GoQueueClient, moves: list[ReplicaMove], timeout_s: float) -> bool:
    """Poll progress until no move of `moves` is in progress (the controller completed them), with a display."""
    deadline = time.monotonic() + timeout_s
    wanted = {(m.topic, m.partition) for m in moves}
    with WaitDisplay(not cli.structured, "waiting for the moves to complete") as display:
        while True:
            progress = client.reassignment_progress()
            moving = [p for p in progress.partitions if (p.topic, p.partition) in wanted]
            if not moving:
                return True
            if time.monotonic() >= deadline:
                return False
            copying = sum(1 for p in moving if p.copying)
            display.update(f"{len(moving)} of {len(wanted)} partitions moving, {copying} still copying")
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
