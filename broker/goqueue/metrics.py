"""Every Prometheus metric the broker exports, declared in one place.

Names follow the runbook exactly (`goqueue_messages_total`, `goqueue_consumer_lag`, `goqueue_message_latency_p99`,
`goqueue_disk_usage_percent`, `goqueue_inflight_messages`). Labels are bounded: topic, partition, group, api, code
— never offsets, client ids or producer ids.

Two kinds: counters and histograms updated on the hot path (`BrokerMetrics`), and gauges read from live state at
scrape time by a collector the broker registers (`register_state_collector`), so no gauge can drift from the truth.

`goqueue_message_latency_p99` is in seconds (Prometheus base unit; the runbook's "10ms" is 0.01), the 99th
percentile of produce latency over the last `LATENCY_WINDOW_S`, computed from a bounded ring of samples; the full
histogram `goqueue_message_latency_seconds` is exported beside it for `histogram_quantile`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from goqueue import __version__

LATENCY_WINDOW_S = 60.0
LATENCY_SAMPLES_MAX = 100_000
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class LatencyWindow:
    """Recent produce latencies for the p99 gauge; bounded in count and age."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=LATENCY_SAMPLES_MAX)
        self._clock = clock
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._samples.append((self._clock(), seconds))

    def p99(self) -> float:
        cutoff = self._clock() - LATENCY_WINDOW_S
        with self._lock:
            while self._samples and self._samples[0][0] < cutoff:
                self._samples.popleft()
            values = sorted(s for _, s in self._samples)
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(len(values) * 0.99))]


class BrokerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("goqueue_messages", "Records appended (produced) per topic.", ["topic"], registry=r)
        self.messages_fetched = Counter(
            "goqueue_messages_fetched", "Records returned to consumers and followers.", ["topic"], registry=r)
        self.bytes_in = Counter("goqueue_bytes_in", "Record batch bytes appended.", ["topic"], registry=r)
        self.bytes_out = Counter("goqueue_bytes_out", "Record batch bytes fetched.", ["topic"], registry=r)
        self.fetches_waiting = Gauge(
            "goqueue_fetches_waiting", "Fetches (long-polls with waitMs) waiting now for records to arrive.",
            ["topic"], registry=r)
        self.latency = Histogram(
            "goqueue_message_latency_seconds", "Produce latency: request received to acknowledged.",
            ["api"], buckets=LATENCY_BUCKETS, registry=r)
        self.fsync = Histogram(
            "goqueue_fsync_duration_seconds", "fdatasync duration per log per group commit.",
            buckets=FSYNC_BUCKETS, registry=r)
        self.group_commit_batches = Histogram(
            "goqueue_group_commit_batches", "Batches written per group commit round.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096), registry=r)
        self.requests = Counter(
            "goqueue_requests", "API requests by operation and outcome code.", ["api", "op", "code"], registry=r)
        self.recovery_truncated_bytes = Counter(
            "goqueue_recovery_truncated_bytes", "Bytes cut from torn or corrupt segment tails at start-up.",
            registry=r)
        self.retention_deleted_segments = Counter(
            "goqueue_retention_deleted_segments", "Segments deleted by retention.", ["topic"], registry=r)
        self.compaction_removed_records = Counter(
            "goqueue_compaction_removed_records", "Records removed by compaction.", ["topic"], registry=r)
        self.isr_changes = Counter(
            "goqueue_isr_changes", "In-sync replica set changes proposed by partition leaders.", ["direction"],
            registry=r)
        self.limit_refusals = Counter(
            "goqueue_limit_refusals", "Connections, requests and Raft frames refused or closed by a resource limit "
            "(limits.*): limit is connections, request_bytes, records, header_timeout, header_bytes or "
            "frame_bytes; on the internal port also credential (a request without a valid broker credential); on "
            "the raft port also tls (a refused TLS handshake, or a plain peer where Raft is TLS-only).",
            ["port", "limit"], registry=r)
        self.open_connections = Gauge(
            "goqueue_open_connections", "Open connections per port (http, internal, raft; gRPC's are not observable "
            "from Python).", ["port"], registry=r)
        self.tls_reloads = Counter(
            "goqueue_tls_reloads", "Changed TLS files seen: result loaded (new connections use them) or refused "
            "(unusable, e.g. a key not matching its certificate: the previous files stay in service).", ["result"],
            registry=r)
        self.tls_expiry = Gauge(
            "goqueue_tls_certificate_expiry_timestamp_seconds", "When the certificate this broker serves expires "
            "(Unix seconds); absent without TLS. Alert well before it (GoQueueTLSCertificateExpiring).", registry=r)
        self.latency_window = LatencyWindow()
        Gauge("goqueue_message_latency_p99", "p99 produce latency in seconds over the last 60 s.",
              registry=r).set_function(self.latency_window.p99)
        Gauge("goqueue_build_info", "Always 1; the label is the broker's version (during a rolling upgrade, "
              "count brokers by version).", ["version"], registry=r).labels(__version__).set(1)

    def observe_produce(self, api: str, seconds: float) -> None:
        self.latency.labels(api).observe(seconds)
        self.latency_window.observe(seconds)


class QuotaMetrics(Collector):
    """Time answers were held back by byte-rate quotas (goqueue.security.quotas). A per-user series exists while its
    user has a quota in that direction and was throttled: it goes when the quota or the user does (`live`, bound by
    the quotas), so the series count stays bounded by the quotas an administrator set."""

    USER_SERIES = "goqueue_quota_user_throttle_seconds"

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.throttle = Counter(
            "goqueue_quota_throttle_seconds", "Seconds answers were delayed by byte-rate quotas, all users.",
            ["direction"], registry=registry)
        self._per_user: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._live: Callable[[str, str], bool] = lambda user, direction: True
        registry.register(self)

    def bind(self, live: Callable[[str, str], bool]) -> None:
        """`live(user, direction)`: the user still has a quota in that direction."""
        self._live = live

    def observe(self, user: str, direction: str, seconds: float) -> None:
        self.throttle.labels(direction).inc(seconds)
        with self._lock:
            self._per_user[(user, direction)] = self._per_user.get((user, direction), 0.0) + seconds

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.USER_SERIES, "Seconds answers were delayed by byte-rate quotas, per user "
                                     "with a quota.", labels=["user", "direction"])
        with self._lock:
            for (user, direction) in [k for k in self._per_user if not self._live(*k)]:
                del self._per_user[(user, direction)]
            for (user, direction), seconds in self._per_user.items():
                family.add_metric([user, direction], seconds)
        yield family


class ConsumerMetrics:
    """Consumer-group counters. The gauges (`goqueue_consumer_lag{group,topic,partition}`,
    `goqueue_inflight_messages{group}`, `goqueue_inflight_capacity{group}`, `goqueue_group_members{group}`,
    `goqueue_group_paused{group}`) are read from the coordinator's state at scrape time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.delivered = Counter(
            "goqueue_consumer_delivered", "Records delivered to group consumers (first deliveries and redeliveries).",
            ["group", "topic"], registry=r)
        self.redeliveries = Counter(
            "goqueue_consumer_redeliveries", "Deliveries of a message that was delivered before (lease expired "
            "or nacked).", ["group", "topic"], registry=r)
        self.acks = Counter("goqueue_consumer_acks", "Messages acked (shared mode).", ["group", "topic"], registry=r)
        self.nacks = Counter("goqueue_consumer_nacks", "Messages nacked (shared mode).", ["group", "topic"], registry=r)
        self.lease_expirations = Counter(
            "goqueue_consumer_lease_expirations", "Leases that reached the visibility timeout unacked.",
            ["group", "topic"], registry=r)
        self.dead_lettered = Counter(
            "goqueue_dead_lettered_messages", "Messages moved to a dead-letter topic after maxDeliveries.",
            ["group", "topic"], registry=r)
        self.commits = Counter(
            "goqueue_consumer_offset_commits", "Offset commits (ordered mode and admin).", ["group"], registry=r)
        self.rebalances = Counter(
            "goqueue_group_rebalances", "Generations started (member joined, left or timed out).", ["group"],
            registry=r)
        self.session_expirations = Counter(
            "goqueue_group_session_expirations", "Members removed because their session timed out.", ["group"],
            registry=r)
        self.inflight_limit_reached = Counter(
            "goqueue_inflight_limit_reached", "Consume requests refused because the group was at its "
            "inflightCapacity.", ["group"], registry=r)
        self.records_skipped = Counter(
            "goqueue_consumer_records_skipped", "Records a group passed unread because retention removed them from "
            "the leader's log first (Kafka's auto.offset.reset case): data the group never saw.", ["group", "topic"],
            registry=r)
        self.state_records = Counter(
            "goqueue_consumer_state_records", "Records written to the internal __consumer_state topic.", registry=r)


GaugeSource = Callable[[], Iterable[Metric]]


class _StateCollector(Collector):
    def __init__(self, source: GaugeSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        yield from self._source()


def register_state_collector(registry: CollectorRegistry, source: GaugeSource) -> None:
    """Gauges computed from live broker state at every scrape."""
    registry.register(_StateCollector(source))


def gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)
