#!/usr/bin/env python3
"""Make the upgrade fixture (tests/fixtures/upgrade/): a 3-broker cluster written by an older GoQueue.

    git -C /work/main worktree add --detach /tmp/gq-before 5ee38ad
    python3 scripts/make_upgrade_fixture.py --code /tmp/gq-before

The brokers run the code under `--code` (PYTHONPATH=<code>/broker); this script only speaks HTTP to them, so it
works with any version that has today's API. It creates topics (RF 3 and RF 1, several partitions, a compacted one,
non-default settings, one grown and one deleted), produces records with known keys, values, headers and
timestamps, moves leadership (elections), declares consumer groups (committed offsets, leases acked and unacked, a
paused group, pause-all), and writes down what the brokers answered (`manifest.json`). Then it stops them:
* `clean`: once PySyncObj has compacted each broker's log into `raft.dump` (as it does five minutes after a broker
  starts: every real cluster has one) and more has changed after it, with SIGTERM, one broker after another;
* `killed`: a young cluster (journals only), by SIGKILL.
Each broker's data and WAL directories and the manifest are packed into `<variant>.tar.xz`, with
`metadata-<broker>.pickle`: the Raft state the OLD code rebuilds from that broker's WAL (`replay_journal`, run with
the old code), which the tests compare with what the new code rebuilds from the same files.

Fixed addresses (127.0.91.2-4, ports 18091/19091/17091): the metadata records every broker's address, and the
test starts the new code on the same ones, so an unchanged registration must stay unchanged.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import httpx

HOSTS = ("127.0.91.2", "127.0.91.3", "127.0.91.4")
HTTP_PORT, GRPC_PORT, RAFT_PORT = 18091, 19091, 17091
PASSWORD = "upgrade-fixture-password"
BASE_TIMESTAMP_MS = 1_767_225_600_000  # 2026-01-01: records carry explicit timestamps, so the fixture is stable
# What every broker of the fixture runs with (and the new code must run with to read it the same way). Maintenance
# waits an hour before its first run: no retention or compaction changes the records while a test reads them.
ENV = {"GOQUEUE_CLUSTER_PASSWORD": PASSWORD, "GOQUEUE_RETENTION_CHECKINTERVAL": "1h",
       "GOQUEUE_RETENTION_MAXAGE": "36500d", "GOQUEUE_REPLICATION_PREFERREDLEADERDELAY": "2s",
       "GOQUEUE_REPLICATION_REPLICALAGMAX": "3s", "GOQUEUE_LOG_FORMAT": "json"}
ZONES = ("zone-a", "zone-b", "zone-c")
TOPICS: dict[str, dict[str, Any]] = {
    "orders": {"partitions": 6, "replicationFactor": 3,
               "config": {"retentionMaxAge": "3650d", "minInsyncReplicas": 2, "maxMessageBytes": 65536,
                          "segmentBytes": 4096}},
    "audit": {"partitions": 3, "replicationFactor": 1, "config": {"retentionMaxSize": "1GiB"}},
    "profiles": {"partitions": 2, "replicationFactor": 3,
                 "config": {"cleanupPolicy": "compact", "tombstoneRetention": "36500d",
                            "uncleanLeaderElection": True}},
    "events": {"partitions": 2, "replicationFactor": 2, "config": {}},  # grown to 4 below
}
GROWN = {"events": 4}
ALTERED = {"audit": {"maxMessageBytes": 32768}}
DELETED = "scratch"
DUMP_WAIT_S = 420  # PySyncObj compacts its log into raft.dump 300 s after a broker starts (logCompactionMinTime)


def broker_env(index: int, code: Path | None, root: Path, settings: dict[str, str]) -> dict[str, str]:
    """The environment broker `index` runs with, its directories under `root/broker-<index>`; `settings` are those
    a newer version needs on top of the fixture's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOQUEUE_")}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(code / part) for part in ("broker", "operator", "harness"))
    env.update(ENV)
    env.update({
        "GOQUEUE_BROKER_ID": str(index), "GOQUEUE_BROKER_HOST": HOSTS[index], "GOQUEUE_BROKER_ZONE": ZONES[index],
        "GOQUEUE_BROKER_PORT": str(HTTP_PORT), "GOQUEUE_BROKER_GRPCPORT": str(GRPC_PORT),
        "GOQUEUE_BROKER_RAFTPORT": str(RAFT_PORT),
        "GOQUEUE_CLUSTER_PEERS": ",".join(f"{host}:{RAFT_PORT}" for host in HOSTS),
        "GOQUEUE_STORAGE_DATADIR": str(root / f"broker-{index}" / "data"),
        "GOQUEUE_STORAGE_WALDIR": str(root / f"broker-{index}" / "wal"),
    })
    env.update(settings)
    return env


def url(index: int) -> str:
    return f"http://{HOSTS[index]}:{HTTP_PORT}"


class Brokers:
    """The three broker processes of the fixture, from `code` (None: whatever `goqueue` this Python imports)."""

    def __init__(self, root: Path, code: Path | None, settings: dict[str, str] | None = None) -> None:
        self.root, self.code, self.settings = root, code, settings or {}
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, index: int) -> None:
        log = (self.root / f"broker-{index}.log").open("ab")
        self.processes[index] = subprocess.Popen(
            [sys.executable, "-m", "goqueue.main"], env=broker_env(index, self.code, self.root, self.settings),
            stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def start_all(self, timeout_s: float = 90) -> None:
        for index in range(len(HOSTS)):
            self.start(index)
        for index in range(len(HOSTS)):
            self.wait_ready(index, timeout_s)

    def wait_ready(self, index: int, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processes[index].poll() is not None:
                raise RuntimeError(f"broker {index} exited with {self.processes[index].returncode}: "
                                   f"{self.log_tail(index)}")
            try:
                if httpx.get(url(index) + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"broker {index} not ready after {timeout_s:.0f}s: {self.log_tail(index)}")

    def stop(self, index: int, timeout_s: float = 60) -> int:
        process = self.processes.pop(index)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout_s)

    def kill_all(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait()
        self.processes.clear()

    def log_tail(self, index: int) -> str:
        path = self.root / f"broker-{index}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @contextmanager
    def running(self) -> Iterator[Brokers]:
        try:
            self.start_all()
            yield self
        finally:
            self.kill_all()  # whatever is still running after an error, a failed start included


# -- talking to the cluster -------------------------------------------------------------------------------------

def call(method: str, path: str, via: int = 0, timeout_s: float = 60, **kwargs: Any) -> Any:
    """One request, retried while the answer is retriable (an election, a coordinator loading)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = httpx.request(method, url(via) + path, timeout=30, **kwargs)
            body = response.json() if response.content else None
            if response.is_success:
                return body
            retriable = isinstance(body, dict) and body.get("error", {}).get("retriable")
            if not retriable or time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: {response.status_code} {body}")
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def wait_healthy(via: int = 0, timeout_s: float = 120) -> None:
    """Every broker live, every partition with a leader and its whole replica list in sync."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = httpx.get(url(via) + "/v1/cluster/status", timeout=5).json()
            if status.get("healthy") and status["leader"]["leader"] is not None:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError("the cluster did not become healthy")


def record(topic: str, n: int) -> dict[str, Any]:
    """Record n of a topic: what is produced, and what a fetch must return."""
    value: str | None = f"{topic} value {n}"
    if topic == "profiles":
        key = f"user-{n % 7}"
        value = None if n % 11 == 10 else f"profile of {key} version {n}"  # some tombstones
    else:
        key = f"{topic}-key-{n}"
    return {"key": key, "value": value, "headers": {"n": str(n), "topic": topic},
            "timestampMs": BASE_TIMESTAMP_MS + n * 1000}


def produce(topic: str, first: int, count: int, partition: int | None = None) -> None:
    records = [record(topic, n) for n in range(first, first + count)]
    body: dict[str, Any] = {"records": records}
    if partition is not None:
        body["partition"] = partition
    call("POST", f"/v1/topics/{topic}/records", json=body)


def read_partition(topic: str, partition: int) -> list[dict[str, Any]]:
    """Every readable record of one partition, as the fetch API answers it."""
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = call("GET", f"/v1/topics/{topic}/partitions/{partition}/records",
                    params={"offset": offset, "maxRecords": 5000})
        records.extend({k: r[k] for k in ("offset", "key", "value", "headers", "timestampMs")}
                       for r in body["records"])
        if body["nextOffset"] >= body["highWatermark"]:
            return records
        offset = body["nextOffset"]


def write_cluster(variant: str) -> None:
    """Every kind of metadata command and some of every kind of data, through the API."""
    for name, spec in TOPICS.items():
        call("POST", "/v1/topics", json={"name": name, **spec})
    call("POST", "/v1/topics", json={"name": DELETED, "partitions": 1, "replicationFactor": 3})
    call("DELETE", f"/v1/topics/{DELETED}")
    for name, partitions in GROWN.items():
        call("PATCH", f"/v1/topics/{name}", json={"partitions": partitions})
    for name, config in ALTERED.items():
        call("PATCH", f"/v1/topics/{name}", json={"config": config})
    wait_healthy()
    for first in range(0, 240, 40):
        produce("orders", first, 40)  # keyed: spread by CRC32C over six partitions, several 4 KiB segments each
    for partition in range(3):
        produce("audit", partition * 20, 20, partition=partition)
    produce("profiles", 0, 60)
    produce("events", 0, 30)
    # Elections: leadership off broker 1 (controlled), then back once the preferred replicas are in sync again.
    call("POST", "/v1/admin/cluster/brokers/1/transfer-leadership")
    time.sleep(4)
    wait_healthy()
    # Groups: committed offsets (ordered), leases acked and unacked (shared), a paused group, pause-all.
    call("PUT", "/v1/groups/ledger", json={"mode": "ordered", "topics": ["orders"],
                                           "config": {"autoOffsetReset": "earliest", "sessionTimeout": "45s"}})
    call("POST", "/v1/groups/ledger/offsets", json={"offsets": [
        {"topic": "orders", "partition": p, "offset": 3 + 2 * p} for p in range(6)]})
    call("PUT", "/v1/groups/workers", json={"mode": "shared", "topics": ["audit"],
                                            "config": {"visibilityTimeout": "12h", "maxDeliveries": 5,
                                                       "autoOffsetReset": "earliest"}})
    leased = call("POST", "/v1/groups/workers/consume",
                  json={"consumerId": "worker-1", "topic": "audit", "maxRecords": 12})["records"]
    call("POST", "/v1/groups/workers/ack", json={"leaseIds": [r["leaseId"] for r in leased[::2]]})
    call("PUT", "/v1/groups/billing", json={"mode": "shared", "topics": ["orders", "events"]})
    call("POST", "/v1/admin/consumers/pause")  # pause-all, then resume-all: both commands are journaled
    call("POST", "/v1/admin/consumers/resume")
    call("POST", "/v1/groups/billing/pause")
    if variant == "killed":
        call("POST", "/v1/admin/consumers/pause")  # ends paused-all: the flag must survive a crash too
    wait_healthy()


def wait_for_dumps(root: Path) -> None:
    deadline = time.monotonic() + DUMP_WAIT_S
    while not all((root / f"broker-{i}" / "wal" / "raft.dump").exists() for i in range(len(HOSTS))):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no raft.dump on every broker after {DUMP_WAIT_S}s")
        time.sleep(5)


def write_after_dumps() -> None:
    """Changes the journal holds after the dump: a new broker reads both."""
    call("PATCH", "/v1/topics/events", json={"config": {"maxMessageBytes": 16384}})
    produce("events", 30, 10)
    call("POST", "/v1/admin/cluster/brokers/2/transfer-leadership")
    time.sleep(4)
    wait_healthy()


def manifest(variant: str, commit: str) -> dict[str, Any]:
    """What the old brokers answer: the test expects the new code to answer the same about the same data."""
    topics = {name: call("GET", f"/v1/topics/{name}") for name in [*TOPICS, "__consumer_state"]}
    return {
        "variant": variant, "commit": commit, "hosts": list(HOSTS), "ports": [HTTP_PORT, GRPC_PORT, RAFT_PORT],
        "env": ENV, "zones": list(ZONES),
        "members": call("GET", "/v1/cluster/members"),
        "topics": {name: {k: t[k] for k in ("name", "partitions", "replicationFactor", "config")}
                   | {"replicas": [p["replicas"] for p in t["partitionDetails"]]} for name, t in topics.items()},
        "replication": call("GET", "/v1/replication/status"),
        "records": {name: {str(p): read_partition(name, p) for p in range(topics[name]["partitions"])}
                    for name in TOPICS},
        "groups": {name: call("GET", f"/v1/groups/{name}") for name in ("ledger", "workers", "billing")},
        "inflight": call("GET", "/v1/admin/inflight")["messages"],
        "deleted": [DELETED],
    }


# -- the metadata as a version's code rebuilds it from a journal -------------------------------------------------

def replay_journal(wal_dir: Path, load_dump: Callable[[IO[bytes]], Any] | None = None) -> Any:
    """The Raft state the `goqueue` on sys.path rebuilds from `wal_dir`, as PySyncObj and `RaftMetadata._apply` do:
    the state in `raft.dump` (if the log was compacted), then every later journal entry applied by its
    `apply_command` in log order (a refused command changes nothing). The dump is read by `load_dump`, by default
    that goqueue's Raft codec, as its broker reads it."""
    from goqueue.replication import raft_codec
    from goqueue.replication.metadata import MetadataConflict, apply_command

    state, dumped_index = dumped_state(wal_dir, load_dump or raft_codec.load)
    for index, command in journal_commands(wal_dir):
        if index > dumped_index:
            with suppress(MetadataConflict):
                apply_command(state, command)
    return state


def dumped_state(wal_dir: Path, load_dump: Callable[[IO[bytes]], Any]) -> tuple[Any, int]:
    """(the metadata in `raft.dump`, the index of the last entry it covers); an empty state and 0 without one. The
    dump is PySyncObj's: a gzipped pickle of (the SyncObj's attributes, last applied entry, the one before, nodes)."""
    from goqueue.replication.metadata import empty_state

    dump = wal_dir / "raft.dump"
    if not dump.exists():
        return empty_state(), 0
    with gzip.open(dump) as file:
        attributes, last_applied = load_dump(file)[:2]
    return attributes["metadata"], last_applied[1]


class DumpAsWritten(pickle.Unpickler):
    """What the fixture's expected state is read with: the dump as PySyncObj wrote it, plain data and the cluster's
    node objects. (5ee38ad's own codec refuses those nodes, so it cannot read its own dump: the bug this fixture
    found. The expected state is what the brokers held, not what that code made of it.)"""

    def find_class(self, module: str, name: str) -> Any:
        allowed = {("_codecs", "encode"), ("__builtin__", "set"), ("__builtin__", "frozenset"),
                   ("pysyncobj.node", "TCPNode")}
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"{module}.{name} in a metadata dump")
        return super().find_class(module, name)


def journal_commands(wal_dir: Path) -> list[tuple[int, Any]]:
    """(log index, metadata command) of each command in `wal_dir/raft.journal`, in log order, decoded by the
    plain-data codec of the `goqueue` on sys.path. Reads a copy: opening a journal may extend its reserve."""
    from goqueue.replication import raft_codec
    from goqueue.replication.raft_journal import RaftJournal

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "wal"
        shutil.copytree(wal_dir, copy)
        journal = RaftJournal(copy / "raft.journal")
        try:
            entries = [journal[i] for i in range(len(journal))]
        finally:
            journal._destroy()
    commands = []
    for entry, index, _term in entries:
        if entry[0] != 0:  # PySyncObj's no-op, membership and version entries
            continue
        function_id, args = raft_codec.loads(entry[1:])[:2]
        assert function_id == 0, f"entry calls replicated method {function_id}; RaftMetadata has one, _apply"
        commands.append((index, args[0]))
    return commands


def pack(root: Path, out: Path, variant: str, manifest_data: dict[str, Any], code: Path) -> None:
    """<variant>.tar.xz: broker-N/{data,wal}, manifest.json and metadata-N.pickle (the old code's replay)."""
    (root / "manifest.json").write_text(json.dumps(manifest_data, indent=1, sort_keys=True) + "\n")
    for index in range(len(HOSTS)):
        target = root / f"metadata-{index}.pickle"
        subprocess.run([sys.executable, __file__, "replay", str(root / f"broker-{index}" / "wal"), str(target)],
                       env={**os.environ, "PYTHONPATH": str(code / "broker")}, check=True)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / f"{variant}.tar.xz", "w:xz", preset=9) as tar:
        for name in ["manifest.json", *(f"metadata-{i}.pickle" for i in range(len(HOSTS)))]:
            tar.add(root / name, arcname=f"{variant}/{name}")
        for index in range(len(HOSTS)):
            for part in ("data", "wal"):
                tar.add(root / f"broker-{index}" / part, arcname=f"{variant}/broker-{index}/{part}")


def make(variant: str, code: Path, out: Path, commit: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"gq-upgrade-{variant}-") as scratch:
        root = Path(scratch)
        brokers = Brokers(root, code)
        with brokers.running():
            write_cluster(variant)
            if variant == "clean":
                wait_for_dumps(root)
                write_after_dumps()
            manifest_data = manifest(variant, commit)
            if variant == "clean":
                for index in reversed(range(len(HOSTS))):  # the metadata leader's turn comes whenever it comes
                    exit_code = brokers.stop(index)
                    assert exit_code == 0, f"broker {index} exited with {exit_code}: {brokers.log_tail(index)}"
            else:
                brokers.kill_all()
        pack(root, out, variant, manifest_data, code)
        print(f"{out / (variant + '.tar.xz')}: {(out / (variant + '.tar.xz')).stat().st_size:,} bytes")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "replay":  # run under the old code's PYTHONPATH by `pack`
        state = replay_journal(Path(sys.argv[2]), lambda file: DumpAsWritten(file).load())
        Path(sys.argv[3]).write_bytes(pickle.dumps(state, protocol=2))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, required=True, help="a checkout of the version that writes the fixture")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/upgrade")
    parser.add_argument("--variant", choices=["clean", "killed"], action="append")
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(args.code), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    for variant in args.variant or ["clean", "killed"]:
        make(variant, args.code.resolve(), args.out, commit)


if __name__ == "__main__":
    main()
