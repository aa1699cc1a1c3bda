"""The broker's one typed settings object, loaded from a YAML file and then the environment.

Keys are the runbook's dotted names (`broker.port`, `storage.dataDir`, `retention.maxAge` …). Every key can also be
set from the environment by one rule: ``GOQUEUE_`` + the dotted key upper-cased, dots replaced by underscores
(`storage.dataDir` → ``GOQUEUE_STORAGE_DATADIR``). The environment wins over the file, so a Kubernetes pod can
override one key of a mounted ConfigMap. List values (`cluster.peers`) are comma-separated in the environment.

Durations accept seconds as a number or a string with a unit (``250ms``, ``30s``, ``5m``, ``168h``, ``7d``);
sizes accept bytes or a unit (``10GB`` = 10**10, ``512MiB``, Kubernetes-style ``100Gi``).

Only `main` builds `Settings` (via `load_settings`); every other module receives it. Loading never touches the
disk beyond reading the file, so an invalid config leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "GOQUEUE_"

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40,
}


class ConfigError(Exception):
    """An invalid setting; the message names the key and, when it came from the environment, the variable."""


def parse_duration_s(value: Any) -> float:
    """`"168h"` → 604800.0; numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 168h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 250ms, 30s, 5m, 168h or 7d")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size_bytes(value: Any) -> int:
    """`"10GB"` → 10_000_000_000, `"100Gi"` → 107374182400; numbers are bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10GB or 512MiB")
    if isinstance(value, int):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size such as 10GB, 512MiB or 100Gi")
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


def format_duration_s(seconds: float) -> str:
    """The inverse of `parse_duration_s`, in the unit settings are written in: 604800 → "168h", 90 → "90s".
    Hours rather than days, as the runbook writes retention (168h)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def format_size_bytes(size: int) -> str:
    """The inverse of `parse_size_bytes`, in the largest unit that divides it: 10**10 → "10GB", 2**27 → "128MiB"."""
    choices = [f"{size // unit}{name}" for name, unit in (
        ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3),
        ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)) if size and size % unit == 0]
    return min(choices, key=len) if choices else str(size)


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration_s)]
Size = Annotated[int, BeforeValidator(parse_size_bytes)]
CommaList = Annotated[list[str], BeforeValidator(_split_list)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class FsyncPolicy(StrEnum):
    ALWAYS = "always"      # every acknowledged batch is on disk (fdatasync per group commit)
    INTERVAL = "interval"  # acknowledged when written; fdatasync every storage.fsyncIntervalMs
    NEVER = "never"        # the OS decides; a power loss can lose acknowledged records


class BrokerSection(_Section):
    id: int | None = Field(
        None, ge=0, description="Broker id. Default: the ordinal at the end of the hostname (goqueue-2 → 2), else 0.")
    host: str = Field("0.0.0.0", description="Address the HTTP and gRPC servers bind to.")
    advertised_host: str | None = Field(
        None, alias="advertisedHost", description="Address other brokers and clients use; default: host, or the "
        "hostname when host is 0.0.0.0.")
    port: int = Field(8080, ge=1, le=65535, description="HTTP API, health and /metrics port.")
    grpc_port: int = Field(9000, alias="grpcPort", ge=0, le=65535, description="gRPC port (0 disables gRPC).")
    raft_port: int = Field(7000, alias="raftPort", ge=1, le=65535, description="Metadata Raft port.")
    internal_port: int = Field(
        8081, alias="internalPort", ge=1, le=65535, description="Broker-to-broker HTTP (replica fetches, forwarded "
        "requests); every request must carry a broker credential signed with cluster.password.")
    zone: str | None = Field(None, description="Failure zone, used to spread replicas.")
    shutdown_grace_s: Duration = Field(
        20.0, alias="shutdownGrace", description="Seconds to drain requests on SIGTERM; below the pod's grace period.")


class StorageSection(_Section):
    data_dir: Path = Field(Path("/data"), alias="dataDir", description="Partition logs live here.")
    wal_dir: Path = Field(
        Path("/data/wal"), alias="walDir", description="Metadata: topic registry, Raft journal and snapshots.")
    fsync: FsyncPolicy = Field(FsyncPolicy.ALWAYS, description="When writes reach the disk before acknowledgement.")
    fsync_interval_s: Duration = Field(
        0.05, alias="fsyncInterval", description="Flush period for fsync=interval.")
    segment_bytes: Size = Field(
        128 * 2**20, alias="segmentBytes", ge=4096, description="Roll the active segment past this size.")
    segment_age_s: Duration = Field(
        7 * 86400.0, alias="segmentAge", description="Roll the active segment when its first record is this old, "
        "so age-based retention can delete it.")
    index_interval_bytes: Size = Field(
        4096, alias="indexIntervalBytes", ge=1, description="Bytes of log between sparse index entries.")
    write_queue_max: int = Field(
        4096, alias="writeQueueMax", ge=1, description="Pending appends before produce answers OVERLOADED.")


class RetentionSection(_Section):
    max_age_s: Duration = Field(168 * 3600.0, alias="maxAge", description="Default topic retention by age.")
    max_size_bytes: Size = Field(
        10 * 10**9, alias="maxSize", description="Default topic retention by size (whole topic; each partition "
        "keeps maxSize / partitions).")
    check_interval_s: Duration = Field(30.0, alias="checkInterval", description="How often retention runs.")
    tombstone_retention_s: Duration = Field(
        86400.0, alias="tombstoneRetention", description="Compacted topics keep delete markers this long, so "
        "consumers that are behind still see the delete.")


class LimitsSection(_Section):
    max_message_bytes: Size = Field(
        1 * 2**20, alias="maxMessageBytes", ge=1, description="Default largest record (key + value + headers).")
    max_request_bytes: Size = Field(
        64 * 2**20, alias="maxRequestBytes", ge=1024, description="Largest binary request: an HTTP record batch "
        "body or a gRPC message. Refused (REQUEST_TOO_LARGE, 413) from Content-Length or while it streams in, "
        "before it is parsed; a batch is checked by CRC only, with no per-record work.")
    max_json_request_bytes: Size = Field(
        4 * 2**20, alias="maxJsonRequestBytes", ge=1024, description="Largest JSON request body (every route but "
        "the binary batch one), checked the same way. Lower than maxRequestBytes because parsing JSON holds the "
        "event loop: 4 MiB parses in ~0.1 s, and fits one largest record (1 MiB) in base64.")
    max_records_per_request: int = Field(
        10_000, alias="maxRecordsPerRequest", ge=1, le=100_000, description="Records in one JSON or gRPC produce, "
        "checked before the records are validated: validating costs ~8 µs per record on the event loop, so "
        "10,000 keep one request under ~0.1 s; at most 100,000, the API's own bound.")
    max_fetch_bytes: Size = Field(
        8 * 2**20, alias="maxFetchBytes", ge=1024, description="Upper bound of one fetch response.")
    max_wait_s: Duration = Field(30.0, alias="maxWait", description="Longest long-poll a fetch may ask for.")
    max_partitions: int = Field(
        10000, alias="maxPartitions", ge=1, description="Partition replicas one broker may hold (each costs open files "
        "and memory); topic creates and partition increases past it are refused.")
    max_http_connections: int = Field(
        10_000, alias="maxHttpConnections", ge=1, description="Open connections on broker.port. Beyond it a "
        "connection is served only for /healthz, /readyz and /metrics (see probeConnections), everything else "
        "answers OVERLOADED and is closed; past both, an idle connection is closed to make room. Probes keep working "
        "while clients hold every slot.")
    probe_connections: int = Field(
        64, alias="probeConnections", ge=1, description="Connections beyond maxHttpConnections kept for the "
        "health and metrics paths (kubelet probes, Prometheus); past both, a connection is closed at once.")
    max_grpc_connections: int = Field(
        10_000, alias="maxGrpcConnections", ge=1, description="Open connections on broker.grpcPort "
        "(grpc.max_allowed_incoming_connections): further connections are refused by gRPC itself.")
    max_raft_connections: int = Field(
        64, alias="maxRaftConnections", ge=2, description="Open connections on broker.raftPort, peers included "
        "(two per peer at most); a connection beyond it is closed at once.")
    header_timeout_s: Duration = Field(
        10.0, alias="headerTimeout", description="A new connection must complete its first request headers (HTTP), "
        "its handshake (gRPC) or its first Raft message within this, and a kept-alive HTTP connection each later "
        "request head from the first byte after the previous request; slow or silent ones are closed.")
    http_idle_timeout_s: Duration = Field(
        5.0, alias="httpIdleTimeout", description="An HTTP keep-alive connection idle this long after a response "
        "is closed (uvicorn's timeout_keep_alive; clients reconnect transparently).")
    grpc_idle_timeout_s: Duration = Field(
        300.0, alias="grpcIdleTimeout", description="A gRPC connection with no call for this long is closed "
        "(grpc.max_connection_idle_ms); channels reconnect on the next call. Dead peers are found sooner by "
        "keepalive pings every 60 s.")
    max_header_bytes: Size = Field(
        64 * 1024, alias="maxHeaderBytes", ge=4096, description="Largest HTTP request head (request line and "
        "headers), chunk size line, trailer section or run of bytes between requests, counted while unfinished (up to "
        "one read more may pass), and largest gRPC metadata.")
    raft_max_frame_bytes: Size = Field(
        64 * 2**20, alias="raftMaxFrameBytes", ge=65536, description="Largest message a Raft peer may send; a "
        "connection announcing more is closed before the frame is buffered. Before a connection has identified "
        "itself as a peer, its frames are capped at 64 KiB.")


class ClusterSection(_Section):
    peers: CommaList = Field(default_factory=list, description="host:raftPort of every broker, this one included.")
    password: str | None = Field(
        None, description="Raft password (PySyncObj's wire format is pickle: never run a cluster without it).",
        repr=False)
    password_file: Path | None = Field(
        None, alias="passwordFile", description="File holding the cluster password (its first line), e.g. a mounted "
        "Secret: the password then appears in no environment variable and no settings file.")

    @model_validator(mode="before")
    @classmethod
    def _read_password_file(cls, data: Any) -> Any:
        """`passwordFile` becomes `password` when the settings are read (the file is read once, at start)."""
        if not isinstance(data, dict):
            return data
        path = data.get("passwordFile", data.get("password_file"))
        if path is None:
            return data
        if data.get("password") is not None:
            raise ValueError("give password or passwordFile, not both")
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"passwordFile {path}: {exc.strerror}") from None
        if not lines or not lines[0].strip():
            raise ValueError(f"passwordFile {path} is empty")
        return {**data, "password": lines[0].strip()}


class OffsetReset(StrEnum):
    EARLIEST = "earliest"  # a new group reads everything still retained
    LATEST = "latest"      # a new group reads only what is produced after it first reads


class Assignor(StrEnum):
    RANGE = "range"    # contiguous partitions per member, per topic (Kafka's default): predictable, may be uneven
    STICKY = "sticky"  # balanced, and a rebalance moves as few partitions as possible (fewer duplicates)


class ConsumersSection(_Section):
    """Consumer groups: leases, dead letters, sessions. Every group may override the per-group defaults."""

    visibility_timeout_s: Duration = Field(
        30.0, alias="visibilityTimeout", description="Shared mode: seconds a delivered message stays leased to "
        "its consumer before it is redelivered (SQS's default: long enough for ordinary processing).")
    max_deliveries: int = Field(
        5, alias="maxDeliveries", ge=1, le=1000, description="Shared mode: deliveries before a message that is "
        "never acked goes to the dead-letter topic; 5 tolerates transient failures without looping on poison.")
    inflight_capacity: int = Field(
        10_000, alias="inflightCapacity", ge=1, le=1_000_000, description="Shared mode: most unacked messages "
        "(leased or waiting for redelivery) per group; bounds the broker's memory and the redelivery storm.")
    session_timeout_s: Duration = Field(
        30.0, alias="sessionTimeout", description="A member that neither heartbeats nor consumes for this long "
        "is removed (ordered mode: its partitions are reassigned).")
    auto_offset_reset: OffsetReset = Field(
        OffsetReset.LATEST, alias="autoOffsetReset", description="Where a group starts on a partition it has "
        "no committed offset for (Kafka's default: latest).")
    assignor: Assignor = Field(Assignor.STICKY, description="Ordered mode partition assignor.")
    dead_letter_suffix: str = Field(
        ".dlq", alias="deadLetterSuffix", pattern=r"^[a-zA-Z0-9._-]{1,32}$",
        description="Dead letters of topic T go to T + this suffix unless the group names a topic.")
    max_groups: int = Field(10_000, alias="maxGroups", ge=1, description="Groups per broker (memory bound).")
    max_members: int = Field(1000, alias="maxMembers", ge=1, description="Members per group (memory bound).")
    max_records_per_consume: int = Field(
        10_000, alias="maxRecordsPerConsume", ge=1, description="Upper bound of one consume request.")
    max_nack_delay_s: Duration = Field(
        12 * 3600.0, alias="maxNackDelay", description="Longest redelivery delay a nack may ask for (SQS: 12h).")
    expiry_interval_s: Duration = Field(
        0.25, alias="expiryInterval", description="How often expired leases and sessions are collected: the "
        "precision of the visibility timeout.")
    state_partitions: int = Field(
        1, alias="statePartitions", ge=1, le=64, description="Partitions of the internal __consumer_state topic "
        "when it is first created; a group's state lives in partition hash(group) % partitions, and the leader of "
        "that partition coordinates the group.")
    state_segment_bytes: Size = Field(
        2**20, alias="stateSegmentBytes", ge=4096, description="Segment size of __consumer_state. Small, so "
        "compaction (which works on closed segments) keeps the log a new coordinator replays short: failover "
        "time grows with it.")
    load_timeout_s: Duration = Field(
        120.0, alias="loadTimeout", description="How long start-up waits for the state partitions this broker leads "
        "to be replayed before it reports ready anyway (their groups answer NOT_READY until they are).")


class ReplicationSection(_Section):
    min_insync_replicas: int = Field(
        2, alias="minInsyncReplicas", ge=1, description="Default min.insync.replicas for acks=all (capped by the "
        "topic's replication factor, so RF=1 topics still accept writes).")
    replica_lag_max_s: Duration = Field(
        10.0, alias="replicaLagMax", description="A follower not caught up for this long leaves the ISR.")
    ack_timeout_s: Duration = Field(
        30.0, alias="ackTimeout", description="How long an acks=all produce waits for the in-sync replicas.")
    fetch_max_wait_s: Duration = Field(
        0.5, alias="fetchMaxWait", description="Long-poll of a follower's fetch from its leader.")
    fetch_max_bytes: Size = Field(
        8 * 2**20, alias="fetchMaxBytes", ge=4096, description="Bytes per follower fetch response.")
    preferred_leader_delay_s: Duration = Field(
        10.0, alias="preferredLeaderDelay", description="A recovered preferred leader takes leadership back after "
        "being alive and in sync this long.")


class SecuritySection(_Section):
    """Client authentication (SCRAM-SHA-512 → session tokens) and authorization (ACLs): docs/SECURITY.md."""

    allow_anonymous: bool | None = Field(
        None, alias="allowAnonymous", description="Serve requests without credentials as User:ANONYMOUS. Default: "
        "on for a single broker without cluster.peers (the quick start; logged as a warning), off with peers.")
    acls_enabled: bool | None = Field(
        None, alias="aclsEnabled", description="Check every client request against the ACLs (a principal without "
        "an ACL granting the operation is refused FORBIDDEN). Off: whoever is let in may do anything. Default: on "
        "when anonymous access is off, off when it is on (the quick start, and clusters not secured yet).")
    super_users: CommaList = Field(
        default_factory=list, alias="superUsers", description="Principals allowed everything, ACLs or not "
        "(User:<name>, comma-separated): the administrators who create the other users and ACLs.")
    token_lifetime_s: Duration = Field(
        3600.0, alias="tokenLifetime", gt=0, description="How long a session token from a SCRAM exchange is valid; "
        "the clients authenticate again before it expires.")
    admin_user: str | None = Field(
        None, alias="adminUser", pattern=r"^[A-Za-z0-9._@-]{1,128}$", description="A super user whose password "
        "is read from adminPasswordFile rather than the metadata: the first administrator, who creates the others.")
    admin_password_file: Path | None = Field(
        None, alias="adminPasswordFile", description="File holding adminUser's password (a mounted Secret).")

    def anonymous_allowed(self, peers: list[str]) -> bool:
        return self.allow_anonymous if self.allow_anonymous is not None else not peers

    def acls_enforced(self, peers: list[str]) -> bool:
        return self.acls_enabled if self.acls_enabled is not None else not self.anonymous_allowed(peers)


TLS_LISTENERS = ("http", "grpc", "internal", "raft")
# Raft is not TLS-only by default: brokers of a release before Raft TLS speak it plain, and a broker upgraded into
# TLS-only Raft could not talk to them (docs/SECURITY.md, "Raft"). With certFile and caFile it offers TLS anyway.
DEFAULT_TLS_LISTENERS = ("http", "grpc", "internal")


class TlsSection(_Section):
    """TLS of the listeners (docs/SECURITY.md). The files are re-read when they change: a renewed certificate is
    served without a restart (a Kubernetes Secret volume updates them in place)."""

    cert_file: Path | None = Field(
        None, alias="certFile", description="PEM certificate chain of this broker, leaf first. Setting it turns TLS "
        "on for tls.listeners.")
    key_file: Path | None = Field(None, alias="keyFile", description="PEM private key of certFile.")
    ca_file: Path | None = Field(
        None, alias="caFile", description="PEM CA certificates that sign the brokers' certificates: brokers verify "
        "each other with them on the internal listener, and clients are told to trust them.")
    client_ca_file: Path | None = Field(
        None, alias="clientCaFile", description="PEM CA certificates whose client certificates authenticate on the "
        "http and grpc listeners (mTLS: User:<CN>). Unset: no client certificate authenticates anyone — never the "
        "server CA by default, which may be an issuer that signs certificates for anyone who asks.")
    listeners: CommaList = Field(
        default_factory=lambda: list(DEFAULT_TLS_LISTENERS), description="Listeners that speak TLS once certFile "
        "is set (http, grpc, internal, raft; comma-separated; default http,grpc,internal). The internal listener and "
        "Raft always ask brokers for their certificate. raft named: Raft is TLS-only. Not named, with certFile and "
        "caFile: Raft offers TLS (dials TLS, accepts TLS) and still takes a plain peer, such as a broker of a "
        "release before Raft TLS.")
    client_auth: Literal["none", "requested", "required"] = Field(
        "requested", alias="clientAuth", description="Client certificates on the http and grpc listeners: none, "
        "requested (a certificate signed by clientCaFile authenticates its CN as User:<CN>; clients without one "
        "use SCRAM or anonymous access; without clientCaFile this is none), or required (a connection without one "
        "is refused; needs clientCaFile).")
    reload_check_s: Duration = Field(
        10.0, alias="reloadCheckInterval", gt=0, description="How often the files are checked for a change "
        "(at a handshake, at most this often).")

    def enabled_on(self, listener: str) -> bool:
        return self.cert_file is not None and listener in self.listeners

    def verifies_clients(self) -> bool:
        """Client certificates authenticate: asked for, and a CA to check them against was named for that."""
        return self.client_auth != "none" and self.client_ca_file is not None


class LogSection(_Section):
    level: str = Field("info", pattern="^(?i)(debug|info|warning|error)$", description="Log level.")
    format: str = Field("auto", pattern="^(auto|json|console)$", description="json when not on a terminal.")


class Settings(_Section):
    broker: BrokerSection = BrokerSection()
    storage: StorageSection = StorageSection()
    retention: RetentionSection = RetentionSection()
    limits: LimitsSection = LimitsSection()
    cluster: ClusterSection = ClusterSection()
    replication: ReplicationSection = ReplicationSection()
    consumers: ConsumersSection = ConsumersSection()
    security: SecuritySection = SecuritySection()
    tls: TlsSection = TlsSection()
    log: LogSection = LogSection()

    @model_validator(mode="after")
    def _check_ports_distinct(self) -> Settings:
        broker = self.broker
        ports = [p for p in (broker.port, broker.grpc_port, broker.raft_port, broker.internal_port) if p]
        if len(ports) != len(set(ports)):
            raise ValueError("broker.port, broker.grpcPort, broker.raftPort and broker.internalPort must differ")
        return self

    @model_validator(mode="after")
    def _check_cluster(self) -> Settings:
        peers = self.cluster.peers
        for peer in peers:
            host, sep, port = peer.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"cluster.peers entry {peer!r} is not host:raftPort")
        if len(peers) > 1 and not self.cluster.password:
            raise ValueError("cluster.password is required for a multi-broker cluster (the Raft wire format is "
                             "pickle; GOQUEUE_CLUSTER_PASSWORD)")
        if peers and self.broker_id() >= len(peers):
            raise ValueError(f"broker.id {self.broker_id()} has no entry in cluster.peers ({len(peers)} peers; "
                             "this broker's entry is the one at index broker.id)")
        return self

    @model_validator(mode="after")
    def _check_super_users(self) -> Settings:
        for name in self.security.super_users:
            kind, sep, user = name.partition(":")
            if kind != "User" or not sep or not user:
                raise ValueError(f"security.superUsers entry {name!r} is not User:<name>")
        if (self.security.admin_user is None) != (self.security.admin_password_file is None):
            raise ValueError("security.adminUser and security.adminPasswordFile go together")
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        tls = self.tls
        if (tls.cert_file is None) != (tls.key_file is None):
            raise ValueError("tls.certFile and tls.keyFile go together")
        unknown = [name for name in tls.listeners if name not in TLS_LISTENERS]
        if unknown:
            raise ValueError(f"tls.listeners: unknown listener(s) {', '.join(unknown)} "
                             f"(known: {', '.join(TLS_LISTENERS)})")
        for listener in ("internal", "raft"):
            if tls.enabled_on(listener) and tls.ca_file is None:
                raise ValueError(f"tls.caFile is required when the {listener} listener speaks TLS: brokers verify "
                                 "each other's certificates with it")
        if tls.cert_file is not None and tls.client_auth == "required" and tls.client_ca_file is None:
            raise ValueError("tls.clientAuth=required needs tls.clientCaFile (the CA that signs client "
                             "certificates); or set tls.clientAuth=requested or none")
        return self

    def raft_addresses(self) -> tuple[str, list[str]]:
        """(this broker's Raft address, the others'): with peers, this broker's entry is the one at index broker.id
        (the StatefulSet ordinal); alone, it is a one-member group on the advertised host."""
        peers = self.cluster.peers
        if not peers:
            return f"{self.advertised_host()}:{self.broker.raft_port}", []
        me = peers[self.broker_id()]
        return me, [p for i, p in enumerate(peers) if i != self.broker_id()]

    def advertised_host(self) -> str:
        """The address other brokers and forwarded requests use for this broker."""
        if self.broker.advertised_host:
            return self.broker.advertised_host
        if self.broker.host not in ("0.0.0.0", "::"):
            return self.broker.host
        if self.cluster.peers:
            return self.cluster.peers[self.broker_id()].rpartition(":")[0]
        return socket.gethostname()

    def broker_id(self) -> int:
        """Explicit broker.id, else the StatefulSet ordinal in the hostname (goqueue-2 → 2), else 0."""
        if self.broker.id is not None:
            return self.broker.id
        match = re.search(r"-(\d+)$", socket.gethostname().split(".")[0])
        return int(match.group(1)) if match else 0


def env_var_for(dotted_key: str) -> str:
    """`storage.dataDir` → `GOQUEUE_STORAGE_DATADIR`: the one rule, documented in the README."""
    return ENV_PREFIX + dotted_key.upper().replace(".", "_")


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, tuple[str, ...]]]:
    """(dotted key, path of aliases) for every leaf setting."""
    keys: list[tuple[str, tuple[str, ...]]] = []
    for name, field in model.model_fields.items():
        alias = field.alias or name
        dotted = f"{prefix}{alias}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend((k, (alias, *path)) for k, path in _leaf_keys(annotation, dotted + "."))
        else:
            keys.append((dotted, (alias,)))
    return keys


def all_keys() -> list[str]:
    """Every dotted key, for docs and `--help`."""
    return [key for key, _ in _leaf_keys(Settings)]


def load_settings(config_file: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """File first, then `GOQUEUE_*` variables; raises ConfigError with one line naming the key."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {config_file} is not valid YAML: {exc}".replace("\n", " ")) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping of sections (broker:, storage: …)")
        raw = loaded or {}
    sources: dict[tuple[str, ...], str] = {}
    for dotted, path in _leaf_keys(Settings):
        var = env_var_for(dotted)
        if var in environ:
            section = raw.setdefault(path[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"{path[0]}: must be a mapping, got {type(section).__name__}")
            section[path[1]] = environ[var]
            sources[path] = var
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "config"
        origin = f" (from {sources[loc]})" if loc in sources else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown setting; known keys: {', '.join(k for k in all_keys() if k.startswith(loc[0]))}"
        raise ConfigError(f"{key}: {message}{origin}") from exc
