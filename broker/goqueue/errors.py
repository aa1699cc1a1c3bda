"""Every operating error GoQueue can report, with its wire data.

The tree::

    GoQueueError
    ├── InvalidRequest            400  INVALID_ARGUMENT     malformed body, bad field values
    │   ├── InvalidTopicName      400  INVALID_ARGUMENT
    │   ├── InvalidConfig         400  INVALID_ARGUMENT     a topic/group setting out of range
    │   ├── PartitionsCannotShrink 400 FAILED_PRECONDITION
    │   └── RecordTooLarge        413  INVALID_ARGUMENT     a record or batch over max.message.bytes
    ├── NotFound
    │   ├── TopicNotFound         404  NOT_FOUND
    │   ├── PartitionNotFound     404  NOT_FOUND
    │   ├── GroupNotFound         404  NOT_FOUND
    │   ├── UnknownMember         404  NOT_FOUND            the member left or its session expired: join again
    │   ├── LeaseNotFound         404  NOT_FOUND            a lease id the group never handed out
    │   ├── UserNotFound          404  NOT_FOUND
    │   └── AclNotFound           404  NOT_FOUND
    ├── OffsetOutOfRange          416  OUT_OF_RANGE
    ├── TopicAlreadyExists        409  ALREADY_EXISTS
    ├── OutOfOrderSequence        409  FAILED_PRECONDITION  an idempotent producer skipped a sequence
    ├── GroupHasMembers           409  FAILED_PRECONDITION  offset reset / delete refused while members live
    ├── FencedGeneration          409  FAILED_PRECONDITION  a commit or fetch from a previous generation
    ├── InflightLimitReached      429  RESOURCE_EXHAUSTED   a shared group holds inflightCapacity unacked messages
    ├── StorageError
    │   ├── DiskFull              507  RESOURCE_EXHAUSTED   ENOSPC: nothing was acknowledged
    │   ├── CorruptRecord         500  DATA_LOSS            a batch failed its CRC on read
    │   └── PartitionOffline      503  UNAVAILABLE          a segment is corrupt; the partition waits for repair
    ├── Overloaded                503  RESOURCE_EXHAUSTED   a bounded queue is full: retry later
    ├── NotReady                  503  UNAVAILABLE          storage still recovering, or shutting down
    ├── Timeout                   504  DEADLINE_EXCEEDED
    ├── NotLeader                 503  UNAVAILABLE          leadership moved; retry or go to the leader
    │   └── NotCoordinator        503  UNAVAILABLE          this broker does not coordinate the group (now); retry
    ├── NotEnoughReplicas         503  UNAVAILABLE          ISR below min.insync.replicas: acks=all refused
    ├── FencedLeaderEpoch         409  FAILED_PRECONDITION  a replica request from an old leader epoch
    ├── Unavailable               503  UNAVAILABLE          client side: the server could not be reached
    ├── Unauthenticated           401  UNAUTHENTICATED      no valid credentials (anonymous access is off)
    ├── Forbidden                 403  PERMISSION_DENIED    the principal's ACLs do not allow the operation
    └── InternalError             500  INTERNAL             a bug; the request may or may not have applied

Each class carries `code` (stable forever: clients switch on it), `http_status`, `grpc_code` (the name of a
`grpc.StatusCode`), `exit_code` for the CLIs and `retriable`. The HTTP exception handler, the gRPC wrapper and the
CLIs read these attributes and nothing else; `error_for_code` maps a code back to its class so a client raises the
same exception whether it spoke HTTP or gRPC.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GoQueueError(Exception):
    """Base of every operating error; never raised itself."""

    code: ClassVar[str] = "ERROR"
    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"
    exit_code: ClassVar[int] = 1
    retriable: ClassVar[bool] = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        """The one error body every API returns: {"error": {"code", "message", "retriable"}}."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "retriable": self.retriable}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InternalError(GoQueueError):
    """A bug or an unexpected failure inside the broker; the request may or may not have taken effect."""

    code = "INTERNAL"


class InvalidRequest(GoQueueError):
    """The request is malformed or a field has an invalid value."""

    code = "INVALID_REQUEST"
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"
    exit_code = 2


class InvalidTopicName(InvalidRequest):
    """Topic names are 1-231 characters of [a-zA-Z0-9._-], and not '.' or '..' (231: the longest name whose
    quarantined partition directory, `<name>-<partition>.corrupt-<time>`, still fits a file name)."""

    code = "INVALID_TOPIC_NAME"


class InvalidConfig(InvalidRequest):
    """A topic or group setting is out of range or unknown."""

    code = "INVALID_CONFIG"


class PartitionsCannotShrink(InvalidRequest):
    """Partitions can only grow: shrinking would orphan records and break key ordering."""

    code = "PARTITIONS_CANNOT_SHRINK"
    grpc_code = "FAILED_PRECONDITION"


class RecordTooLarge(InvalidRequest):
    """A record is larger than the topic's max.message.bytes."""

    code = "RECORD_TOO_LARGE"
    http_status = 413


class RequestTooLarge(InvalidRequest):
    """The request body, or its number of records, is over the broker's limit (checked before parsing)."""

    code = "REQUEST_TOO_LARGE"
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class MethodNotAllowed(InvalidRequest):
    """The path exists but does not take this HTTP method (the `Allow` header lists the ones it takes)."""

    code = "METHOD_NOT_ALLOWED"
    http_status = 405
    grpc_code = "UNIMPLEMENTED"


class UnsupportedMediaType(InvalidRequest):
    """The body's Content-Type is not one this route reads (JSON, or the binary batch format where offered)."""

    code = "UNSUPPORTED_MEDIA"
    http_status = 415


class NotFound(GoQueueError):
    """Base of the not-found errors."""

    code = "NOT_FOUND"
    http_status = 404
    grpc_code = "NOT_FOUND"
    exit_code = 3


class TopicNotFound(NotFound):
    """The named topic does not exist in this cluster."""

    code = "TOPIC_NOT_FOUND"


class PartitionNotFound(NotFound):
    """The topic exists but has no such partition."""

    code = "PARTITION_NOT_FOUND"


class GroupNotFound(NotFound):
    """The named consumer group does not exist."""

    code = "GROUP_NOT_FOUND"


class UnknownMember(NotFound):
    """The member is not in the group (it left, or its session expired and it was removed): join again."""

    code = "UNKNOWN_MEMBER"


class LeaseNotFound(NotFound):
    """The lease id names a message this group never delivered (a forged or mistyped lease id)."""

    code = "LEASE_NOT_FOUND"


class BrokerNotFound(NotFound):
    """No broker with this id is a member of the cluster."""

    code = "BROKER_NOT_FOUND"


class UserNotFound(NotFound):
    """No user of this name is in the cluster's metadata."""

    code = "USER_NOT_FOUND"


class AclNotFound(NotFound):
    """No ACL with exactly these fields is in the cluster's metadata (`goqueue-admin acl list` shows them)."""

    code = "ACL_NOT_FOUND"


class OffsetOutOfRange(GoQueueError):
    """The requested offset is before the log start offset or after the log end offset."""

    code = "OFFSET_OUT_OF_RANGE"
    http_status = 416
    grpc_code = "OUT_OF_RANGE"
    exit_code = 2


class TopicAlreadyExists(GoQueueError):
    """A topic with this name already exists."""

    code = "TOPIC_ALREADY_EXISTS"
    http_status = 409
    grpc_code = "ALREADY_EXISTS"
    exit_code = 4


class OutOfOrderSequence(GoQueueError):
    """An idempotent producer skipped a sequence number: a batch in between was never written."""

    code = "OUT_OF_ORDER_SEQUENCE"
    http_status = 409
    grpc_code = "FAILED_PRECONDITION"
    exit_code = 4


class GroupHasMembers(GoQueueError):
    """The group has live members; stop them first, or force the operation (they will see a rebalance)."""

    code = "GROUP_HAS_MEMBERS"
    http_status = 409
    grpc_code = "FAILED_PRECONDITION"
    exit_code = 4


class FencedGeneration(GoQueueError):
    """The request carries an old group generation: the group rebalanced since; join again and retry."""

    code = "FENCED_GENERATION"
    http_status = 409
    grpc_code = "FAILED_PRECONDITION"
    exit_code = 4


class InflightLimitReached(GoQueueError):
    """The shared group holds its inflightCapacity of unacked messages; ack some, or wait for leases to expire."""

    code = "INFLIGHT_LIMIT_REACHED"
    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    exit_code = 5
    retriable = True


class StorageError(GoQueueError):
    """Base of errors raised by the storage engine."""

    code = "STORAGE_ERROR"
    http_status = 500
    grpc_code = "INTERNAL"
    exit_code = 5
    retriable = True


class DiskFull(StorageError):
    """The volume is full (ENOSPC): the write was refused and nothing of it was acknowledged."""

    code = "DISK_FULL"
    http_status = 507
    grpc_code = "RESOURCE_EXHAUSTED"


class CorruptRecord(StorageError):
    """A stored batch failed its CRC32C check on read."""

    code = "CORRUPT_RECORD"
    grpc_code = "DATA_LOSS"
    retriable = False


class PartitionOffline(StorageError):
    """The partition cannot serve: a segment before its tail is corrupt and waits for repair."""

    code = "PARTITION_OFFLINE"
    http_status = 503
    grpc_code = "UNAVAILABLE"


class Overloaded(GoQueueError):
    """A bounded queue is full; retry after a short back-off."""

    code = "OVERLOADED"
    http_status = 503
    grpc_code = "RESOURCE_EXHAUSTED"
    exit_code = 5
    retriable = True


class NotReady(GoQueueError):
    """The broker is still recovering its storage, or is shutting down."""

    code = "NOT_READY"
    http_status = 503
    grpc_code = "UNAVAILABLE"
    exit_code = 5
    retriable = True


class Timeout(GoQueueError):
    """The operation did not finish within its deadline."""

    code = "TIMEOUT"
    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    exit_code = 5
    retriable = True


class NotLeader(GoQueueError):
    """This broker does not lead the partition (leadership moved); retry, or send it to the leader named in details."""

    code = "NOT_LEADER"
    http_status = 503
    grpc_code = "UNAVAILABLE"
    exit_code = 5
    retriable = True


class NotCoordinator(NotLeader):
    """This broker does not coordinate the consumer group: the group's state partition is led elsewhere, or its
    leadership is moving. Retry: any broker forwards group requests to the coordinator once metadata settles."""

    code = "NOT_COORDINATOR"


class NotEnoughReplicas(GoQueueError):
    """Fewer in-sync replicas than min.insync.replicas: an acks=all write is refused rather than under-replicated."""

    code = "NOT_ENOUGH_REPLICAS"
    http_status = 503
    grpc_code = "UNAVAILABLE"
    exit_code = 5
    retriable = True


class FencedLeaderEpoch(GoQueueError):
    """A replica request carried a leader epoch that is not the partition's current one."""

    code = "FENCED_LEADER_EPOCH"
    http_status = 409
    grpc_code = "FAILED_PRECONDITION"
    exit_code = 4
    retriable = True


class Unavailable(GoQueueError):
    """The server could not be reached (raised by the client, never sent on the wire by a broker)."""

    code = "UNAVAILABLE"
    http_status = 503
    grpc_code = "UNAVAILABLE"
    exit_code = 6
    retriable = True


class Unauthenticated(GoQueueError):
    """The request carries no valid credentials: a wrong user name or password, a replayed or expired SCRAM
    exchange, an expired or tampered session token, or none at all where anonymous access is off; on the internal
    (broker-to-broker) listener, a missing, wrong, stale or replayed broker credential."""

    code = "UNAUTHENTICATED"
    http_status = 401
    grpc_code = "UNAUTHENTICATED"
    exit_code = 7


class Forbidden(GoQueueError):
    """The authenticated principal is not allowed this operation on this resource by the cluster's ACLs."""

    code = "FORBIDDEN"
    http_status = 403
    grpc_code = "PERMISSION_DENIED"
    exit_code = 8


def all_error_classes() -> list[type[GoQueueError]]:
    """Every concrete error class, base first (used by the mapping tests and the generated docs table)."""
    found: list[type[GoQueueError]] = []
    pending: list[type[GoQueueError]] = [GoQueueError]
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def error_from_body(status: int, body: object) -> GoQueueError:
    """Rebuild the error a GoQueue server answered with (`{"error": {"code", "message", …}}`)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        cls = error_for_code(str(error.get("code", "")))
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
        return cls(str(error.get("message", f"HTTP {status}")), **details)
    return GoQueueError(f"HTTP {status}: {str(body)[:200]}")


def error_for_code(code: str) -> type[GoQueueError]:
    """The error class for a wire code; unknown codes (a newer server) become the base class."""
    for cls in all_error_classes():
        if cls.code == code:
            return cls
    return GoQueueError
