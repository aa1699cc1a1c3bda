"""`goqueue-cli`: topics, records and consumer groups, for people (tables) and scripts (`-o json`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from goqueue.cli import runtime
from goqueue.cli.config_keys import UnknownConfigKey, canonical_setting
from goqueue.cli.consume import ConsumeOptions, run_consume
from goqueue.cli.groups import group_app
from goqueue.cli.options import resolve_name
from goqueue.cli.produce import ProduceOptions, produce_lines
from goqueue.cli.progress import WaitDisplay
from goqueue.cli.render import Output, human_bytes, print_fields, print_table
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
from goqueue.cli.version import VersionOption, version
from goqueue.client.delivery import DEFAULT_DELIVERY_TIMEOUT_S
from goqueue.models import (
    CleanupPolicy,
    GroupMode,
    SettingSource,
    TopicConfig,
    TopicCreate,
    TopicInfo,
    TopicUpdate,
)

app = typer.Typer(help="GoQueue command line: topics, records, consumer groups.", no_args_is_help=True,
                  add_completion=True, pretty_exceptions_enable=False)
topic_app = typer.Typer(help="Create, list, describe, alter and delete topics.", no_args_is_help=True)
app.add_typer(topic_app, name="topic")
app.add_typer(group_app, name="group")


@app.callback()
def _root(ctx: typer.Context, server: str = ServerOption, output: Output = OutputOption,
          request_timeout: float = RequestTimeoutOption, user: str | None = UserOption,
          password: str | None = PasswordOption, password_file: Path | None = PasswordFileOption,
          ca: Path | None = CaOption, cert: Path | None = CertOption, key: Path | None = KeyOption,
          _version: bool = VersionOption) -> None:
    ctx.obj = CliContext(server=server, output=output, request_timeout_s=request_timeout, user=user,
                         password=password, password_file=password_file, ca_file=ca, cert_file=cert, key_file=key)


app.command("version")(version)


TopicArgument = Annotated[str | None, typer.Argument(metavar="TOPIC", help="Topic name.", show_default=False)]
TopicNameOption = Annotated[str | None, typer.Option("--name", help="The topic name (same as TOPIC; kept for "
                                                     "scripts).", show_default=False)]
TopicOption = Annotated[str | None, typer.Option("--topic", "-t", help="The topic (same as TOPIC; kept for "
                                                 "scripts).", show_default=False)]


def _topic(argument: str | None, flag_value: str | None, flag: str = "--name") -> str:
    return resolve_name(argument, flag_value, what="topic", flag=flag)


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
    if cli.emit(topics):
        return
    print_table(["NAME", "PARTITIONS", "REPLICATION", "CLEANUP", "MESSAGES", "SIZE"],
                [[t.name, t.partitions, t.replication_factor, t.config.cleanup_policy.value, t.messages,
                  human_bytes(t.size_bytes)] for t in topics])


@topic_app.command("create")
def topic_create(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Argument(metavar="TOPIC", show_default=False, help="Topic name: letters, "
                                                "digits, '.', '_', '-'.")] = None,
    name: TopicNameOption = None,
    partitions: Annotated[int, typer.Option(min=1, help="Number of partitions.")] = 1,
    replication_factor: Annotated[int, typer.Option("--replication-factor", min=1, help="Copies of each "
                                                    "partition.")] = 1,
    retention: Annotated[str | None, typer.Option(help="Retention by age, e.g. 168h or 7d.")] = None,
    retention_size: Annotated[str | None, typer.Option("--retention-size", help="Retention by size of the "
                                                       "whole topic, e.g. 10GB.")] = None,
    cleanup_policy: Annotated[CleanupPolicy, typer.Option("--cleanup-policy")] = CleanupPolicy.DELETE,
    max_message_bytes: Annotated[str | None, typer.Option("--max-message-bytes", help="Largest record.")] = None,
    min_insync_replicas: Annotated[int | None, typer.Option("--min-insync-replicas", min=1)] = None,
    config: ConfigOption = None,
) -> None:
    """Create a topic."""
    cli = context(ctx)
    name = _topic(topic, name)
    flags = {"cleanupPolicy": cleanup_policy, "retentionMaxAge": retention, "retentionMaxSize": retention_size,
             "maxMessageBytes": max_message_bytes, "minInsyncReplicas": min_insync_replicas}
    config_model = TopicConfig.model_validate({**{k: v for k, v in flags.items() if v is not None},
                                               **_settings(config)})
    spec = TopicCreate(name=name, partitions=partitions, replication_factor=replication_factor,
                       config=config_model)
    with cli.client() as client:
        info = client.create_topic(spec)
    if not cli.emit(info):
        print(f"topic {info.name} created with {info.partitions} partitions, "
              f"replication factor {info.replication_factor}")


@topic_app.command("describe")
def topic_describe(ctx: typer.Context, topic: TopicArgument = None, name: TopicNameOption = None) -> None:
    """Show a topic's settings — each one's effective value and where it comes from — and each partition:
    offsets, size, segments, leader and replicas."""
    cli = context(ctx)
    name = _topic(topic, name)
    with cli.client() as client:
        info = client.describe_topic(name)
    if cli.emit(info):
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


ConfigOption = Annotated[list[str] | None, typer.Option(
    "--config", help="Setting as key=value, repeatable: the GoQueueTopic spec.config keys (retentionMaxAge=24h), "
    "also dotted (retention.maxAge) or Kafka's (retention.ms=86400000).", show_default=False)]


def _settings(items: list[str] | None) -> dict[str, object]:
    """--config key=value items under the CRD's key names (config_keys.py)."""
    changes: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--config")
        try:
            name, text = canonical_setting(key.strip(), value)
        except UnknownConfigKey as exc:
            raise typer.BadParameter(str(exc), param_hint="--config") from None
        changes[name] = text
    return changes


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
    topic: TopicArgument = None,
    name: TopicNameOption = None,
    partitions: Annotated[int | None, typer.Option(min=1, help="New partition count (grow only).")] = None,
    config: ConfigOption = None,
) -> None:
    """Grow a topic's partitions or change its settings."""
    cli = context(ctx)
    name = _topic(topic, name)
    changes = _settings(config)
    with cli.client() as client:
        info = client.update_topic(name, TopicUpdate(partitions=partitions, config=changes or None))
    if not cli.emit(info):
        print(f"topic {info.name}: {info.partitions} partitions")


@topic_app.command("delete")
def topic_delete(
    ctx: typer.Context,
    topic: TopicArgument = None,
    name: TopicNameOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a topic and all its records. Asks first when run on a terminal, unless --yes."""
    cli = context(ctx)
    name = _topic(topic, name)
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete topic {name} and all its records?", abort=True)
    with cli.client() as client:
        client.delete_topic(name)
    if not cli.emit({"deleted": name}):
        print(f"topic {name} deleted")


# -- records ---------------------------------------------------------------------------------------------------

@app.command("produce")
def produce(
    ctx: typer.Context,
    topic_argument: TopicArgument = None,
    topic_option: TopicOption = None,
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
    topic = _topic(topic_argument, topic_option, "--topic")
    headers = {}
    for item in header or []:
        name, sep, text = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--header")
        headers[name] = text
    lines = [value] if value is not None else (line.rstrip("\n") for line in sys.stdin)
    options = ProduceOptions(servers=cli.server, credentials=cli.credentials(), tls=cli.tls(),
                             request_timeout_s=cli.request_timeout_s, delivery_timeout_s=delivery_timeout,
                             topic=topic, key=key, headers=headers, partition=partition, batch=batch)
    with WaitDisplay(not cli.structured,
                     f"sending to {topic} (retried through failovers for up to {delivery_timeout:g}s)"):
        produced = produce_lines(options, lines)
    if cli.emit(produced):
        return
    if len(produced) == 1:
        print(f"produced to {topic} partition {produced[0].partition} at offset {produced[0].offset}")
    else:
        print(f"produced {len(produced)} records to {topic}")


@app.command("consume")
def consume(
    ctx: typer.Context,
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group to read as.")],
    topic_argument: TopicArgument = None,
    topic_option: TopicOption = None,
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
    """Read records as a member of a group; -o json prints one JSON object per record per line, -o yaml one YAML
    document per record."""
    cli = context(ctx)
    topic = _topic(topic_argument, topic_option, "--topic")
    options = ConsumeOptions(topic=topic, group=group, from_beginning=from_beginning, max_records=max_records,
                             ack=ack, idle_timeout_s=timeout, mode=mode, output=cli.output)
    with cli.client() as client, WaitDisplay(not cli.structured, f"waiting for records on {topic}") as display:
        printed = run_consume(client, options, lambda line: _print_record(line, display))
    if not cli.structured:
        print(f"{printed} records{' acknowledged' if ack and printed else ''}", file=sys.stderr)


def _print_record(line: str, display: WaitDisplay) -> None:
    print(line, flush=True)
    display.update("waiting for more records (Ctrl-C stops; --timeout ends an idle wait)")


def main() -> None:
    runtime.main(app, "goqueue-cli")


if __name__ == "__main__":
    main()
