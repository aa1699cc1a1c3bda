"""`goqueue-cli`: topics, records and consumer groups, for people (tables) and scripts (`-o json`)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from goqueue.cli import runtime
from goqueue.cli.consume import ConsumeOptions, run_consume
from goqueue.cli.groups import group_app
from goqueue.cli.render import human_bytes, print_fields, print_json, print_table
from goqueue.cli.runtime import CliContext, Output, OutputOption, ServerOption, context
from goqueue.client.delivery import DEFAULT_DELIVERY_TIMEOUT_S
from goqueue.models import (
    CleanupPolicy,
    GroupMode,
    ProduceRecord,
    SettingSource,
    TopicConfig,
    TopicCreate,
    TopicInfo,
    TopicUpdate,
)

app = typer.Typer(help="GoQueue command line: topics, records, consumer groups.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
topic_app = typer.Typer(help="Create, list, describe, alter and delete topics.", no_args_is_help=True)
app.add_typer(topic_app, name="topic")
app.add_typer(group_app, name="group")


@app.callback()
def _root(ctx: typer.Context, server: str = ServerOption, output: Output = OutputOption) -> None:
    ctx.obj = CliContext(server=server, output=output)


# -- topics ----------------------------------------------------------------------------------------------------

@topic_app.command("list")
def topic_list(
    ctx: typer.Context,
    internal: Annotated[bool, typer.Option("--internal", help="Include the broker's internal topics.")] = False,
) -> None:
    """List all topics."""
    cli = context(ctx)
    with cli.client() as client:
        topics = client.list_topics(internal=internal)
    if cli.json:
        print_json(topics)
        return
    print_table(["NAME", "PARTITIONS", "REPLICATION", "CLEANUP", "MESSAGES", "SIZE"],
                [[t.name, t.partitions, t.replication_factor, t.config.cleanup_policy.value, t.messages,
                  human_bytes(t.size_bytes)] for t in topics])


@topic_app.command("create")
def topic_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Topic name: letters, digits, '.', '_', '-'.")],
    partitions: Annotated[int, typer.Option(min=1, help="Number of partitions.")] = 1,
    replication_factor: Annotated[int, typer.Option("--replication-factor", min=1, help="Copies of each "
                                                    "partition.")] = 1,
    retention: Annotated[str | None, typer.Option(help="Retention by age, e.g. 168h or 7d.")] = None,
    retention_size: Annotated[str | None, typer.Option("--retention-size", help="Retention by size of the "
                                                       "whole topic, e.g. 10GB.")] = None,
    cleanup_policy: Annotated[CleanupPolicy, typer.Option("--cleanup-policy")] = CleanupPolicy.DELETE,
    max_message_bytes: Annotated[str | None, typer.Option("--max-message-bytes", help="Largest record.")] = None,
    min_insync_replicas: Annotated[int | None, typer.Option("--min-insync-replicas", min=1)] = None,
) -> None:
    """Create a topic."""
    cli = context(ctx)
    config = TopicConfig.model_validate({
        "cleanupPolicy": cleanup_policy, "retentionMaxAge": retention, "retentionMaxSize": retention_size,
        "maxMessageBytes": max_message_bytes, "minInsyncReplicas": min_insync_replicas})
    spec = TopicCreate(name=name, partitions=partitions, replication_factor=replication_factor, config=config)
    with cli.client() as client:
        info = client.create_topic(spec)
    if cli.json:
        print_json(info)
    else:
        print(f"topic {info.name} created with {info.partitions} partitions, "
              f"replication factor {info.replication_factor}")


@topic_app.command("describe")
def topic_describe(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Topic name.")]) -> None:
    """Show a topic's settings — each one's effective value and where it comes from — and each partition:
    offsets, size, segments, leader and replicas."""
    cli = context(ctx)
    with cli.client() as client:
        info = client.describe_topic(name)
    if cli.json:
        print_json(info)
        return
    print_fields({
        "Topic": info.name, "Partitions": info.partitions, "Replication factor": info.replication_factor,
        **_setting_fields(info), "Messages": info.messages, "Size": human_bytes(info.size_bytes),
    })
    print()
    print_table(["PARTITION", "LEADER", "REPLICAS", "ISR", "START", "END", "HWM", "SIZE", "SEGMENTS", "STATUS"],
                [[p.partition, p.leader, ",".join(map(str, p.replicas)), ",".join(map(str, p.isr)),
                  p.start_offset, p.end_offset, p.high_watermark, human_bytes(p.size_bytes), p.segments,
                  "online" if p.online else f"OFFLINE: {p.problem}"] for p in info.partition_details])


SETTING_LABELS = {
    "cleanupPolicy": "Cleanup policy", "retentionMaxAge": "Retention (age)", "retentionMaxSize": "Retention (size)",
    "maxMessageBytes": "Max message bytes", "minInsyncReplicas": "Min in-sync replicas",
    "tombstoneRetention": "Tombstone retention", "segmentBytes": "Segment bytes",
    "uncleanLeaderElection": "Unclean leader election"}


def _setting_fields(info: TopicInfo) -> dict[str, str]:
    """Each setting's effective value and where it comes from, as Kafka's describe shows config sources:
    `Retention (age): 168h (broker default)`."""
    fields = {}
    for setting in info.settings:
        if setting.source == SettingSource.TOPIC:
            source = "set on the topic"
        elif setting.source == SettingSource.BROKER:
            source = f"broker setting {setting.broker_key}"
        else:
            source = "broker default" if setting.broker_key else "default"
        note = f"; {setting.note}" if setting.note else ""
        fields[SETTING_LABELS.get(setting.key, setting.key)] = f"{setting.value} ({source}{note})"
    return fields


@topic_app.command("alter")
def topic_alter(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    partitions: Annotated[int | None, typer.Option(min=1, help="New partition count (grow only).")] = None,
    config: Annotated[list[str] | None, typer.Option(
        "--config", help="Setting as key=value, e.g. retentionMaxAge=24h (repeatable).")] = None,
) -> None:
    """Grow a topic's partitions or change its settings."""
    cli = context(ctx)
    changes: dict[str, object] = {}
    for item in config or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--config")
        changes[key] = value
    with cli.client() as client:
        info = client.update_topic(name, TopicUpdate(partitions=partitions, config=changes or None))
    if cli.json:
        print_json(info)
    else:
        print(f"topic {info.name}: {info.partitions} partitions")


@topic_app.command("delete")
def topic_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a topic and all its records. Asks first when run on a terminal, unless --yes."""
    cli = context(ctx)
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete topic {name} and all its records?", abort=True)
    with cli.client() as client:
        client.delete_topic(name)
    if cli.json:
        print_json({"deleted": name})
    else:
        print(f"topic {name} deleted")


# -- records ---------------------------------------------------------------------------------------------------

@app.command("produce")
def produce(
    ctx: typer.Context,
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic to write to.")],
    key: Annotated[str | None, typer.Option("--key", "-k", help="Record key (same key → same partition).")] = None,
    value: Annotated[str | None, typer.Option("--value", "-v", help="Record value; without it, each line of "
                                              "stdin is one record.")] = None,
    partition: Annotated[int | None, typer.Option("--partition", "-p", min=0)] = None,
    header: Annotated[list[str] | None, typer.Option("--header", "-H", help="Header key=value (repeatable).")]
    = None,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Records per request when reading stdin.")] = 500,
    delivery_timeout: Annotated[float, typer.Option(
        "--delivery-timeout", min=0.001, help="Seconds to keep retrying a batch through failovers and unreachable "
        "brokers before failing (Kafka's delivery.timeout.ms).")] = DEFAULT_DELIVERY_TIMEOUT_S,
) -> None:
    """Produce one record (--value) or one record per line of stdin.

    Idempotent and retried: each batch carries a producer id and sequence numbers, so it is sent again after any
    retriable error (a leader moving, a broker down: the next --server is tried) and still written exactly once,
    in order per partition, until --delivery-timeout.
    """
    cli = context(ctx)
    headers = {}
    for item in header or []:
        name, sep, text = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--header")
        headers[name] = text
    lines = [value] if value is not None else (line.rstrip("\n") for line in sys.stdin)
    produced = []
    with cli.client(delivery_timeout_s=delivery_timeout) as client:
        pending: list[ProduceRecord] = []
        for line in lines:
            pending.append(ProduceRecord(key=key, value=line, headers=headers))
            if len(pending) >= batch:
                produced.extend(client.produce(topic, pending, partition=partition).offsets)
                pending = []
        if pending:
            produced.extend(client.produce(topic, pending, partition=partition).offsets)
    if cli.json:
        print_json([o.model_dump(by_alias=True) for o in produced])
    elif len(produced) == 1:
        print(f"produced to {topic} partition {produced[0].partition} at offset {produced[0].offset}")
    else:
        print(f"produced {len(produced)} records to {topic}")


@app.command("consume")
def consume(
    ctx: typer.Context,
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic to read.")],
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group to read as.")],
    from_beginning: Annotated[bool, typer.Option(
        "--from-beginning", help="A new group (or a topic new to the group) starts at the oldest record of every "
        "partition; without it, at their end.")] = False,
    max_records: Annotated[int | None, typer.Option("--max", min=1, help="Stop after N records.")] = None,
    ack: Annotated[bool, typer.Option("--ack", help="Acknowledge (shared) or commit (ordered) what was printed; "
                                      "without it the group's position does not move.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.0, help="Stop after this many seconds without a "
                                           "record.")] = 5.0,
    mode: Annotated[GroupMode, typer.Option("--mode", help="Mode of the group if it does not exist yet.")]
    = GroupMode.SHARED,
) -> None:
    """Read records as a member of a group; -o json prints one JSON object per record per line."""
    cli = context(ctx)
    options = ConsumeOptions(topic=topic, group=group, from_beginning=from_beginning, max_records=max_records,
                             ack=ack, idle_timeout_s=timeout, mode=mode, json_lines=cli.json)
    with cli.client() as client:
        printed = run_consume(client, options, lambda line: print(line, flush=True))
    if not cli.json:
        print(f"{printed} records{' acknowledged' if ack and printed else ''}", file=sys.stderr)


def main() -> None:
    runtime.main(app, "goqueue-cli")


if __name__ == "__main__":
    main()
