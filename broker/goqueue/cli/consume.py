"""`goqueue-cli consume`: read records as a member of a group, for a person at a terminal or a script.

Shared groups: records are leased; with `--ack` they are acked after printing, without it the leases are
released on exit (given back without counting a delivery), so looking never pushes a message toward the
dead-letter topic. Ordered groups: the command joins, reads its assigned partitions and commits after printing with
`--ack`. A group that does not exist yet is created in `--mode` (default shared). `--from-beginning` starts a new
group (or a topic new to it) at the oldest record of every partition, else at their end (`consumers/offsets.py`).

Either way the command leaves the group when it stops — done, idle, Ctrl-C or SIGTERM — as a Kafka consumer does
on close, so a `group reset-offset` right after it is not refused for a member that is gone.

Output: a line per record; with `-o json` one JSON object per line (topic, partition, offset, key, value — text
when UTF-8, else base64 with "encoding": "base64" — headers, timestamp); with `-o yaml` the same fields as one YAML
document per record (`---` before each, so the stream parses as it comes, as `kubectl get -w -o yaml` prints).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from goqueue.cli.render import Output, dump_yaml
from goqueue.client.http import GoQueueClient
from goqueue.config import OffsetReset
from goqueue.errors import FencedGeneration, GroupNotFound, UnknownMember
from goqueue.models import ConsumeRequest, DeliveredRecord, GroupMode, OffsetCommit

PAGE_MAX = 500


@dataclass(frozen=True)
class ConsumeOptions:
    topic: str
    group: str
    from_beginning: bool
    max_records: int | None
    ack: bool
    idle_timeout_s: float
    mode: GroupMode
    output: Output


def record_line(record: DeliveredRecord, output: Output) -> str:
    if output is not Output.TABLE:
        body = {"topic": record.topic, "partition": record.partition, "offset": record.offset, "key": record.key,
                "value": record.value, "headers": record.headers, "timestamp": record.timestamp_ms}
        if record.encoding.value != "utf8":
            body["encoding"] = record.encoding.value
        if record.lease_id is not None:
            body["deliveryCount"] = record.delivery_count
        return json.dumps(body) if output is Output.JSON else "---\n" + dump_yaml(body).rstrip("\n")
    key = "" if record.key is None else f" key={record.key}"
    return f"{record.topic}/{record.partition}@{record.offset}{key} {record.value if record.value is not None else ''}"


def run_consume(client: GoQueueClient, options: ConsumeOptions, emit: Callable[[str], None]) -> int:
    """Consume until `max_records` or `idle_timeout_s` without a record; returns how many were printed."""
    try:
        mode = client.describe_group(options.group).mode
    except GroupNotFound:
        mode = options.mode
    if mode is GroupMode.SHARED:
        return _consume_shared(client, options, emit)
    return _consume_ordered(client, options, emit)


def _client_id() -> str:
    return f"goqueue-cli-{socket.gethostname()}-{os.getpid()}"


def _remaining(options: ConsumeOptions, printed: int) -> int:
    return PAGE_MAX if options.max_records is None else min(PAGE_MAX, options.max_records - printed)


def _note_paused(options: ConsumeOptions, paused: bool, noted: list[bool]) -> None:
    if paused and not noted:
        print(f"group {options.group} is paused: no deliveries until it is resumed", file=sys.stderr)
        noted.append(True)


def _consume_shared(client: GoQueueClient, options: ConsumeOptions, emit: Callable[[str], None]) -> int:
    consumer = _client_id()
    printed = 0
    unacked: list[str] = []
    noted: list[bool] = []
    idle_until = time.monotonic() + options.idle_timeout_s
    try:
        while _remaining(options, printed) > 0 and time.monotonic() < idle_until:
            wait_ms = int(max(0.0, idle_until - time.monotonic()) * 1000)
            response = client.consume(options.group, ConsumeRequest(
                consumer_id=consumer, topic=options.topic, max_records=_remaining(options, printed),
                wait_ms=min(wait_ms, 30_000), start_from=OffsetReset.EARLIEST if options.from_beginning else None))
            _note_paused(options, response.paused, noted)
            for record in response.records:
                emit(record_line(record, options.output))
                printed += 1
            leases = [r.lease_id for r in response.records if r.lease_id is not None]
            if options.ack and leases:
                client.ack(options.group, leases)
            else:
                unacked.extend(leases)
            if response.records:
                idle_until = time.monotonic() + options.idle_timeout_s
    finally:
        try:
            if unacked:
                client.release(options.group, unacked)
        finally:
            with contextlib.suppress(UnknownMember, GroupNotFound):  # expired already, or never created
                client.leave_group(options.group, consumer)
    return printed


def _consume_ordered(client: GoQueueClient, options: ConsumeOptions, emit: Callable[[str], None]) -> int:
    joined = client.join_group(options.group, [options.topic], client_id=_client_id())
    member, generation = joined.member_id, joined.generation
    printed = 0
    noted: list[bool] = []
    idle_until = time.monotonic() + options.idle_timeout_s
    try:
        while _remaining(options, printed) > 0 and time.monotonic() < idle_until:
            wait_ms = int(max(0.0, idle_until - time.monotonic()) * 1000)
            try:
                response = client.consume(options.group, ConsumeRequest(
                    member_id=member, generation=generation, topic=options.topic,
                    max_records=_remaining(options, printed), wait_ms=min(wait_ms, 30_000),
                    start_from=OffsetReset.EARLIEST if options.from_beginning else None))
            except FencedGeneration:  # another member joined or left: take the new assignment
                rejoined = client.join_group(options.group, [options.topic], member_id=member,
                                             client_id=_client_id())
                generation = rejoined.generation
                continue
            _note_paused(options, response.paused, noted)
            next_offsets: dict[tuple[str, int], int] = {}
            for record in response.records:
                emit(record_line(record, options.output))
                printed += 1
                next_offsets[(record.topic, record.partition)] = record.offset + 1
            if options.ack and next_offsets:
                try:
                    client.commit(options.group, [OffsetCommit(topic=t, partition=p, offset=o)
                                                  for (t, p), o in next_offsets.items()],
                                  member_id=member, generation=generation)
                except FencedGeneration:  # rebalanced meanwhile: the new owner reads them again (at least once)
                    generation = client.join_group(options.group, [options.topic], member_id=member,
                                                   client_id=_client_id()).generation
            if response.records:
                idle_until = time.monotonic() + options.idle_timeout_s
    finally:
        with contextlib.suppress(UnknownMember, GroupNotFound):  # the session already expired
            client.leave_group(options.group, member)
    return printed
