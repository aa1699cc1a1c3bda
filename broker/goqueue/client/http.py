"""The one typed HTTP client of GoQueue, used by the CLIs, the operator and the tests.

Every error response is turned back into the `GoQueueError` subclass named by its `code`, so callers catch
`TopicNotFound` whichever door they used; a connection failure is `Unavailable`. Responses are parsed into the
same pydantic models the server produced them from.

Retries: a request refused because something is moving — the group's coordinator (NOT_COORDINATOR), the broker
or the group's state loading (NOT_READY), a partition's leadership (NOT_LEADER), or the broker it was forwarded to
unreachable (UNAVAILABLE in a response) — is sent again up to `retries` times with a short exponential back-off,
so the CLIs and the operator ride through a failover of a few seconds. Group operations are safe to repeat (a
repeated consume at worst leases records that come back after their visibility timeout). Produce is not retried:
its NOT_LEADER or NOT_READY may come after the write. A server that cannot be reached at all fails at once (it is
the one address the caller gave).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from goqueue.errors import GoQueueError, NotCoordinator, NotLeader, NotReady, Unavailable, error_for_code
from goqueue.models import (
    ANSWER,
    AckRequest,
    AckResponse,
    ClusterLeader,
    ClusterMember,
    ClusterStatus,
    CommitRequest,
    CommitResponse,
    ConsumeRequest,
    ConsumeResponse,
    FetchResponse,
    GroupInfo,
    GroupSpec,
    GroupSummary,
    HealthStatus,
    HeartbeatRequest,
    HeartbeatResponse,
    InflightList,
    JoinRequest,
    JoinResponse,
    MetadataBackup,
    NackRequest,
    OffsetCommit,
    OffsetResetPlan,
    OffsetResetRequest,
    PauseResponse,
    ProduceRecord,
    ProduceRequest,
    ProduceResponse,
    ReplicationStatus,
    RestoreReport,
    StorageStats,
    TopicCreate,
    TopicInfo,
    TopicUpdate,
)

DEFAULT_SERVER = "http://localhost:8080"
DEFAULT_RETRIES = 4
RETRY_BACKOFF_S = 0.25  # doubled per attempt, capped at RETRY_BACKOFF_MAX_S: 0.25 + 0.5 + 1 + 2 s over 4 retries
RETRY_BACKOFF_MAX_S = 2.0
# Safe to send again (see the module docstring); never for produce.
RETRY_CODES = frozenset({NotCoordinator.code, NotReady.code, NotLeader.code, Unavailable.code})
M = TypeVar("M", bound=BaseModel)


def error_from_response(response: httpx.Response) -> GoQueueError | None:
    """The error an answer stands for (None for a success)."""
    if response.status_code < 400:
        return None
    try:
        error = response.json()["error"]
        cls = error_for_code(error["code"])
        return cls(error["message"], **error.get("details", {}))
    except (ValueError, KeyError, TypeError):
        pass
    return GoQueueError(f"HTTP {response.status_code} from {response.request.url}: {response.text[:200]}")


def raise_for_error(response: httpx.Response) -> None:
    error = error_from_response(response)
    if error is not None:
        raise error



def _answer(model: type[M], response: httpx.Response) -> M:
    """A broker's answer; fields a newer broker added are ignored (`goqueue.models.ANSWER`)."""
    return model.model_validate_json(response.content, context=ANSWER)


def _answers(model: type[M], response: httpx.Response) -> list[M]:
    return [model.model_validate(item, context=ANSWER) for item in response.json()]

class GoQueueClient:
    def __init__(self, server: str = DEFAULT_SERVER, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None, retries: int = DEFAULT_RETRIES) -> None:
        self.server = server.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.server, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GoQueueClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                timeout_s: float | None = None, retry_codes: frozenset[str] = RETRY_CODES) -> httpx.Response:
        """One request, sent again after a back-off while it is refused in a way that did nothing
        (`retry_codes`); returns the response or raises its error."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(
                    method, path, json=json, params={k: v for k, v in (params or {}).items() if v is not None},
                    timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT)
            except httpx.TimeoutException as exc:
                raise Unavailable(f"{self.server} did not answer in time ({method} {path})") from exc
            except httpx.HTTPError as exc:
                raise Unavailable(f"cannot reach {self.server}: {exc}") from exc
            error = error_from_response(response)
            if error is None:
                return response
            if last or error.code not in retry_codes:
                raise error
            self._back_off(attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _back_off(attempt: int) -> None:
        time.sleep(min(RETRY_BACKOFF_S * 2**attempt, RETRY_BACKOFF_MAX_S))

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        return _answer(model, self.request("GET", path, params=params))

    def _post(self, path: str, body: BaseModel | None, model: type[M], timeout_s: float | None = None) -> M:
        payload = body.model_dump(by_alias=True, exclude_none=True, mode="json") if body is not None else None
        return _answer(model, self.request("POST", path, json=payload, timeout_s=timeout_s))

    # -- health ----------------------------------------------------------------------------------------------

    def health(self) -> HealthStatus:
        return self._get("/v1/admin/health", HealthStatus)

    def ready(self) -> bool:
        try:
            self.request("GET", "/readyz")
        except GoQueueError:
            return False
        return True

    def metrics_text(self) -> str:
        return self.request("GET", "/metrics").text

    def storage_stats(self) -> StorageStats:
        return self._get("/v1/admin/storage", StorageStats)

    # -- topics ----------------------------------------------------------------------------------------------

    def list_topics(self, internal: bool = False) -> list[TopicInfo]:
        params = {"internal": "true"} if internal else None
        return _answers(TopicInfo, self.request("GET", "/v1/topics", params=params))

    def create_topic(self, spec: TopicCreate) -> TopicInfo:
        body = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        return _answer(TopicInfo, self.request("POST", "/v1/topics", json=body))

    def describe_topic(self, name: str) -> TopicInfo:
        return self._get(f"/v1/topics/{name}", TopicInfo)

    def update_topic(self, name: str, update: TopicUpdate) -> TopicInfo:
        body = update.model_dump(by_alias=True, exclude_none=True, mode="json")
        return _answer(TopicInfo, self.request("PATCH", f"/v1/topics/{name}", json=body))

    def delete_topic(self, name: str) -> None:
        self.request("DELETE", f"/v1/topics/{name}")

    # -- records ---------------------------------------------------------------------------------------------

    def produce(self, topic: str, records: Iterable[ProduceRecord], **options: Any) -> ProduceResponse:
        request = ProduceRequest(records=list(records), **options)
        body = request.model_dump(by_alias=True, exclude_none=True, mode="json")
        return _answer(ProduceResponse,
                       self.request("POST", f"/v1/topics/{topic}/records", json=body, retry_codes=frozenset()))

    def fetch(self, topic: str, partition: int, offset: int, *, max_records: int = 500,
              max_bytes: int = 1_048_576, wait_ms: int = 0, encoding: str | None = None) -> FetchResponse:
        return _answer(FetchResponse, self.request(
            "GET", f"/v1/topics/{topic}/partitions/{partition}/records",
            params={"offset": offset, "maxRecords": max_records, "maxBytes": max_bytes, "waitMs": wait_ms,
                    "encoding": encoding},
            timeout_s=wait_ms / 1000 + 30))

    def offsets(self, topic: str, partition: int, timestamp_ms: int | None = None) -> dict[str, int | None]:
        result: dict[str, int | None] = self.request(
            "GET", f"/v1/topics/{topic}/partitions/{partition}/offsets",
            params={"timestampMs": timestamp_ms}).json()
        return result

    # -- consumer groups -------------------------------------------------------------------------------------

    def list_groups(self) -> list[GroupSummary]:
        return _answers(GroupSummary, self.request("GET", "/v1/groups"))

    def describe_group(self, group: str) -> GroupInfo:
        return self._get(f"/v1/groups/{group}", GroupInfo)

    def declare_group(self, group: str, spec: GroupSpec) -> GroupInfo:
        body = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        return _answer(GroupInfo, self.request("PUT", f"/v1/groups/{group}", json=body))

    def delete_group(self, group: str, force: bool = False) -> None:
        self.request("DELETE", f"/v1/groups/{group}", params={"force": "true" if force else None})

    def join_group(self, group: str, topics: list[str], *, member_id: str | None = None,
                   client_id: str = "goqueue-client", host: str | None = None) -> JoinResponse:
        return self._post(f"/v1/groups/{group}/members", JoinRequest(
            member_id=member_id, client_id=client_id, host=host, topics=topics), JoinResponse)

    def heartbeat(self, group: str, member_id: str, generation: int) -> HeartbeatResponse:
        return self._post(f"/v1/groups/{group}/members/{member_id}/heartbeat",
                          HeartbeatRequest(generation=generation), HeartbeatResponse)

    def leave_group(self, group: str, member_id: str) -> None:
        self.request("DELETE", f"/v1/groups/{group}/members/{member_id}")

    def consume(self, group: str, request: ConsumeRequest) -> ConsumeResponse:
        """Long-polls up to `request.wait_ms`; the HTTP timeout allows for it."""
        return self._post(f"/v1/groups/{group}/consume", request, ConsumeResponse,
                          timeout_s=request.wait_ms / 1000 + 30)

    def ack(self, group: str, lease_ids: list[str]) -> AckResponse:
        return self._post(f"/v1/groups/{group}/ack", AckRequest(lease_ids=lease_ids), AckResponse)

    def nack(self, group: str, lease_ids: list[str], delay_s: float = 0.0, reason: str | None = None) -> AckResponse:
        return self._post(f"/v1/groups/{group}/nack", NackRequest(lease_ids=lease_ids, delay_s=delay_s,
                                                                    reason=reason), AckResponse)

    def release(self, group: str, lease_ids: list[str]) -> AckResponse:
        return self._post(f"/v1/groups/{group}/release", AckRequest(lease_ids=lease_ids), AckResponse)

    def commit(self, group: str, offsets: list[OffsetCommit], *, member_id: str | None = None,
               generation: int | None = None) -> CommitResponse:
        return self._post(f"/v1/groups/{group}/offsets", CommitRequest(
            member_id=member_id, generation=generation, offsets=offsets), CommitResponse)

    def reset_offsets(self, group: str, request: OffsetResetRequest) -> OffsetResetPlan:
        return self._post(f"/v1/groups/{group}/offsets/reset", request, OffsetResetPlan)

    def pause(self, group: str | None = None) -> PauseResponse:
        """Pause one group, or every group when `group` is None."""
        path = f"/v1/groups/{group}/pause" if group is not None else "/v1/admin/consumers/pause"
        return self._post(path, None, PauseResponse)

    def resume(self, group: str | None = None) -> PauseResponse:
        path = f"/v1/groups/{group}/resume" if group is not None else "/v1/admin/consumers/resume"
        return self._post(path, None, PauseResponse)

    def inflight(self, group: str | None = None, limit: int = 1000) -> InflightList:
        return self._get("/v1/admin/inflight", InflightList, group=group, limit=limit)

    # -- metadata and cluster --------------------------------------------------------------------------------

    def backup_metadata(self) -> MetadataBackup:
        return self._get("/v1/admin/metadata", MetadataBackup)

    def restore_metadata(self, backup: MetadataBackup) -> RestoreReport:
        return self._post("/v1/admin/metadata", backup, RestoreReport)

    def cluster_status(self) -> ClusterStatus:
        return self._get("/v1/cluster/status", ClusterStatus)

    def cluster_members(self) -> list[ClusterMember]:
        return _answers(ClusterMember, self.request("GET", "/v1/cluster/members"))

    def cluster_leader(self) -> ClusterLeader:
        return self._get("/v1/cluster/leader", ClusterLeader)

    def replication_status(self) -> ReplicationStatus:
        return self._get("/v1/replication/status", ReplicationStatus)
