"""The range of every numeric field of the API, defined once.

The pydantic models (`goqueue.models`: HTTP, the client, the CLIs, the operator) take their `ge`/`le` from these
`Range`s, the gRPC converters check the same `Range`s, and a unit test holds the CRDs' `minimum`/`maximum` to them,
so a value is accepted or refused alike by every door. Each bound says why it is what it is: the width of the field
where it is stored (batch header, index entry, protobuf), the point past which arithmetic on it stops being exact,
or a product limit (SQS's 12 h visibility timeout, Kafka's 1024 partitions here).

Names are bounded by what the file system allows: a partition directory is `<topic>-<partition>`, and the longest
name it is ever renamed to is `<topic>-<partition>.corrupt-<unix seconds>` (a replica set aside), which must fit
`NAME_MAX` (255 bytes on ext4, xfs and tmpfs).
"""

from __future__ import annotations

from dataclasses import dataclass

INT16_MAX = 2**15 - 1
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

MAX_PARTITIONS_PER_TOPIC = 1024
MAX_REPLICATION_FACTOR = 16
MAX_RECORDS_PER_REQUEST = 100_000  # bounds one request's decoding work (HTTP and gRPC produce, fetch, consume)
MAX_IDS_PER_REQUEST = 10_000       # lease ids, offsets and positions in one request

HOUR_S = 3600.0
CENTURY_S = 100 * 365 * 24 * HOUR_S  # longest duration: x1000 in milliseconds stays an exact int64 and float

# On-disk names: `<topic>-<partition>` renamed to `<topic>-<partition>.corrupt-<10-digit unix time>` at most.
FILE_NAME_MAX_BYTES = 255
LONGEST_DIRECTORY_SUFFIX = len(f"-{MAX_PARTITIONS_PER_TOPIC - 1}") + len(".corrupt-") + 10
TOPIC_NAME_MAX_LENGTH = FILE_NAME_MAX_BYTES - LONGEST_DIRECTORY_SUFFIX  # 231
GROUP_NAME_MAX_LENGTH = 249  # Kafka's; group names never reach the file system (they are keys in __consumer_state)
CLIENT_TEXT_MAX_LENGTH = 255  # client, consumer and member ids, hosts
LEASE_ID_MAX_LENGTH = 512     # topic/partition/offset/delivery/epoch: a 249-character topic and four int64s fit


@dataclass(frozen=True)
class Range:
    """An inclusive range of a numeric field, with its unit for messages and docs."""

    minimum: int | float
    maximum: int | float
    unit: str = ""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and \
            self.minimum <= value <= self.maximum

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{_number(self.minimum)}..{_number(self.maximum)}{unit}"

    def problem(self, value: int | float, what: str) -> str | None:
        """Why `value` is out of range (naming the field `what`), or None when it is in range."""
        if value in self:
            return None
        return f"{what} must be in {self.describe()}, got {_number(value)}"

    def clamp(self, value: int | float) -> int | float:
        return min(max(value, self.minimum), self.maximum)


def _number(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() and abs(value) < 1e18 else str(value)


# -- records and producers (the batch header's field widths) ----------------------------------------------------
PARTITION = Range(0, MAX_PARTITIONS_PER_TOPIC - 1)
OFFSET = Range(0, INT64_MAX)
SHIFT = Range(-INT64_MAX, INT64_MAX, "offsets")
TIMESTAMP_MS = Range(0, 253_402_300_799_999, "ms")  # up to 9999-12-31T23:59:59.999Z: any client can show it as a date
PRODUCER_ID = Range(0, INT64_MAX)
PRODUCER_EPOCH = Range(0, INT16_MAX)
BASE_SEQUENCE = Range(0, INT32_MAX)

# -- reads ----------------------------------------------------------------------------------------------------------
MAX_RECORDS = Range(1, MAX_RECORDS_PER_REQUEST, "records")
MAX_BYTES = Range(1, INT32_MAX, "bytes")  # the broker then caps it by limits.maxFetchBytes
WAIT_MS = Range(0, INT32_MAX, "ms")       # the broker then caps it by limits.maxWait
GENERATION = Range(0, INT64_MAX)
BROKER_ID = Range(0, INT32_MAX)
LEADER_EPOCH = Range(-1, INT32_MAX)       # -1: "no epoch" in the replica protocol
INFLIGHT_LIST = Range(1, 100_000, "messages")
BYTE_RATE = Range(1, INT64_MAX, "bytes/s")  # a user's quota (goqueue.security.quotas)
STREAM_CREDIT = Range(0, MAX_RECORDS_PER_REQUEST, "records")

# -- topic settings ---------------------------------------------------------------------------------------------------
PARTITIONS = Range(1, MAX_PARTITIONS_PER_TOPIC, "partitions")
REPLICATION_FACTOR = Range(1, MAX_REPLICATION_FACTOR, "replicas")
MIN_INSYNC_REPLICAS = Range(1, MAX_REPLICATION_FACTOR, "replicas")
RETENTION_MAX_AGE_S = Range(0, CENTURY_S, "s")     # 0: the broker's retention.maxAge
TOMBSTONE_RETENTION_S = Range(0, CENTURY_S, "s")   # 0: the broker's retention.tombstoneRetention
RETENTION_MAX_BYTES = Range(0, INT64_MAX, "bytes")  # 0: the broker's retention.maxSize
MAX_MESSAGE_BYTES = Range(1, INT32_MAX, "bytes")    # also at most the broker's limits.maxRequestBytes
SEGMENT_BYTES = Range(4096, INT32_MAX, "bytes")     # index positions are u32: headroom for the batch that rolls it

# -- consumer group settings and requests -----------------------------------------------------------------------------
VISIBILITY_TIMEOUT_S = Range(0, 12 * HOUR_S, "s")  # SQS's maximum; a lease deadline is then always a sane int64
SESSION_TIMEOUT_S = Range(0, HOUR_S, "s")          # 0: the broker's consumers.sessionTimeout
MAX_DELIVERIES = Range(1, 1000, "deliveries")
INFLIGHT_CAPACITY = Range(1, 1_000_000, "messages")
NACK_DELAY_S = Range(0, CENTURY_S, "s")            # the broker then caps it by consumers.maxNackDelay
