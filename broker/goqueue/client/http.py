"""The one typed HTTP client of GoQueue, used by the CLIs, the operator and the tests.

Every error response is turned back into the `GoQueueError` subclass named by its `code`, so callers catch
`TopicNotFound` whichever door they used; a connection failure is `Unavailable`. Responses are parsed into the
same pydantic models the server produced them from.

Servers: one address or several (`"http://a:8080,http://b:8080"`, `bootstrap.py`); a request that cannot reach
one (connection refused, connect timeout: nothing was sent) goes to the next, and a server that did not answer
is left for the next request. With a single address, an unreachable server fails at once.

Produce is idempotent and retried by default (`http_producer.py`): the client chooses each record's partition (the
broker's own key rule), sends one request per partition stamped with its producer id and sequence, and sends it
again — to the next server when one is unreachable — after every retriable error, until the delivery timeout
(120 s by default). A resend of a batch that was written is answered with its original
offsets, so every record is written once, in order per partition. `idempotent=False` (or acks=0) sends the call
as one request, never retried.

Other retries: a request refused because something is moving — the group's coordinator (NOT_COORDINATOR), the
broker or the group's state loading (NOT_READY), a partition's leadership (NOT_LEADER), or the broker it was
forwarded to unreachable (UNAVAILABLE in a response) — is sent again up to `retries` times with a short jittered
exponential back-off, so the CLIs and the operator ride through a failover of a few seconds. Group operations are
safe to repeat (a repeated consume at worst leases records that come back after their visibility timeout).

Authentication: with `credentials` (user and password) the client runs a SCRAM-SHA-512 exchange with the server it
is about to call, sends the session token with every request, and authenticates again before it expires — or once
more when a broker refuses the token (UNAUTHENTICATED). Without credentials requests are anonymous.

Groups: the client remembers the groups it joined or consumed from as a member and leaves them on `close()`
(`membership.py`), as a Kafka consumer does. An ordered member's read positions are kept here too (`positions.py`)
and sent with each consume, so a consume whose answer was lost is sent again and returns the same records.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from goqueue.client.auth import Credentials, TokenHolder, client_final, credential_spec, verify_server
from goqueue.client.bootstrap import ServerList
from goqueue.client.delivery import DEFAULT_DELIVERY_TIMEOUT_S, DeliveryPolicy, backoff_s
from goqueue.client.http_producer import HttpProducer
from goqueue.client.membership import LEAVE_TIMEOUT_S, Memberships
from goqueue.client.positions import ReadPositions
from goqueue.client.tls import ClientTls
from goqueue.errors import (
    GoQueueError,
    GroupNotFound,
    NotCoordinator,
    NotLeader,
    NotReady,
    Unauthenticated,
    Unavailable,
    UnknownMember,
    error_for_code,
)
from goqueue.models import (
    ANSWER,
    AckRequest,
    AckResponse,
    Acks,
    AclSpec,
    BrokerVersion,
    CaughtUp,
    ClusterLeader,
    ClusterMember,
    ClusterStatus,
    CommitRequest,
    CommitResponse,
    ConsumeRequest,
    ConsumeResponse,
    DrainProgress,
    FetchResponse,
    GroupInfo,
    GroupSpec,
    GroupSummary,
    HealthStatus,
    HeartbeatRequest,
    HeartbeatResponse,
    HeldReplicas,
    InflightList,
    JoinRequest,
    JoinResponse,
    LeadershipTransfer,
    MetadataBackup,
    NackRequest,
    OffsetCommit,
    OffsetResetPlan,
    OffsetResetRequest,
    PauseResponse,
    ProduceRecord,
    ProduceRequest,
    ProduceResponse,
    ReassignmentCancel,
    ReassignmentCancelled,
    ReassignmentExecute,
    ReassignmentGoals,
    ReassignmentPlan,
    ReassignmentProgress,
    ReassignmentStarted,
    RebalanceAccepted,
    ReplicaMove,
    ReplicationStatus,
    RestartCheck,
    RestoreReport,
    ScramFinishRequest,
    ScramFinishResponse,
    ScramStartRequest,
    ScramStartResponse,
    StorageStats,
    TopicCreate,
    TopicInfo,
    TopicPartition,
    TopicUpdate,
    UserInfo,
    UserQuotasSpec,
)

DEFAULT_SERVER = "http://localhost:8080"
ADMIN_CLUSTER = "/v1/admin/cluster"
DEFAULT_RETRIES = 4
RETRY_BACKOFF_S = 0.25  # doubled per attempt, capped at RETRY_BACKOFF_MAX_S: 0.25 + 0.5 + 1 + 2 s over 4 retries
RETRY_BACKOFF_MAX_S = 2.0
# Safe to send again (see the module docstring); produce has its own rules (`delivery.py`).
RETRY_CODES = frozenset({NotCoordinator.code, NotReady.code, NotLeader.code, Unavailable.code})
M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


class _Unreached(Exception):
    """A request got no answer; `sent` says whether it may have reached the broker (else nothing happened)."""

    def __init__(self, error: Unavailable, sent: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.sent = sent


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


def _answer(model: type[M], response: httpx.Response) -> M:
    """A broker's answer; fields a newer broker added are ignored (`goqueue.models.ANSWER`)."""
    return model.model_validate_json(response.content, context=ANSWER)


def _answers(model: type[M], response: httpx.Response) -> list[M]:
    return [model.model_validate(item, context=ANSWER) for item in response.json()]

class GoQueueClient:
    def __init__(self, server: str | Sequence[str] = DEFAULT_SERVER, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None, retries: int = DEFAULT_RETRIES, *,
                 idempotent: bool = True, delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
                 credentials: Credentials | None = None, tls: ClientTls | None = None) -> None:
        """`tls`: what `https://` servers are verified against and the client certificate (mTLS) presented to them;
        None: the system's CAs, no client certificate."""
        self.servers = ServerList(server)
        self.credentials = credentials
        self._tokens = TokenHolder()
        self.retries = retries
        self.timeout_s = timeout_s
        self.idempotent = idempotent
        self.producer = HttpProducer(self, DeliveryPolicy(timeout_s=delivery_timeout_s))
        self._http = httpx.Client(timeout=timeout_s, transport=transport,
                                  verify=tls.ssl_context() if tls is not None else True)
        self._rng = random.Random()
        self.memberships = Memberships(self._leave_now, (GoQueueError, httpx.HTTPError))
        self.positions = ReadPositions()

    @property
    def server(self) -> str:
        """The address requests go to now."""
        return self.servers.current

    def close(self) -> None:
        """Leave every group this client is a member of, then close the connections."""
        self.leave_groups()
        self.memberships.close()
        self._http.close()

    def __enter__(self) -> GoQueueClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------------------

    def _authorization(self, server: str) -> dict[str, str]:
        """The Authorization header for a request to `server`: a session token (got there when due), or none."""
        if self.credentials is None:
            return {}
        token = self._tokens.current(time.time())
        if token is None:
            token = self._login(server, self.credentials)
        return {"authorization": f"Bearer {token}"}

    def _login(self, server: str, credentials: Credentials) -> str:
        """A SCRAM exchange with `server` (both steps there, where the exchange is kept); returns the token."""
        exchange = credentials.exchange()
        started = self._auth_step(server, "start", ScramStartRequest(client_first=exchange.client_first),
                                  ScramStartResponse)
        finished = self._auth_step(server, "finish", ScramFinishRequest(
            exchange_id=started.exchange_id, client_final=client_final(exchange, started.server_first)),
            ScramFinishResponse)
        verify_server(exchange, finished.server_final)
        self._tokens.store(finished.token, finished.expires_at_ms / 1000, time.time())
        return finished.token

    def _auth_step(self, server: str, step: str, body: BaseModel, model: type[M]) -> M:
        try:
            response = self._send(server, "POST", f"/v1/auth/scram/{step}", json=body.model_dump(mode="json"),
                                  authenticated=False)
        except _Unreached as exc:
            raise exc.error from exc
        error = error_from_response(response)
        if error is not None:
            raise error
        return _answer(model, response)

    def _send(self, server: str, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
              timeout_s: float | None = None, authenticated: bool = True) -> httpx.Response:
        headers = self._authorization(server) if authenticated else {}
        try:
            return self._http.request(
                method, server + path, json=json, headers=headers,
                params={k: v for k, v in (params or {}).items() if v is not None},
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Unreached(Unavailable(f"cannot reach {server}: {exc}"), sent=False) from exc
        except httpx.TimeoutException as exc:
            raise _Unreached(Unavailable(f"{server} did not answer in time ({method} {path})"), sent=True) from exc
        except httpx.HTTPError as exc:
            raise _Unreached(Unavailable(f"no answer from {server}: {exc}"), sent=True) from exc

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                timeout_s: float | None = None, retry_codes: frozenset[str] = RETRY_CODES,
                repeatable: bool = False) -> httpx.Response:
        """One request, sent again after a back-off while it is refused in a way that did nothing
        (`retry_codes`), and to the next server while one cannot be reached; returns the response or raises its
        error. A request that may have reached a server which then did not answer is not resent (`Unavailable`),
        unless it is a read; the next request goes to the next server. A `repeatable` request (one whose second
        sending has the effect of the first: an ordered consume with client-held positions) is also sent again
        after a lost answer, every server in turn, up to `retries` rounds with the back-off."""
        attempt = unreached = 0
        renewed = False
        while True:
            server = self.servers.current
            try:
                response = self._send(server, method, path, json=json, params=params, timeout_s=timeout_s)
            except _Unreached as exc:
                self.servers.failed(server)
                unreached += 1
                if exc.sent and method != "GET" and not repeatable:
                    raise exc.error from exc
                if unreached >= len(self.servers):
                    if not repeatable or attempt >= self.retries:
                        raise exc.error from exc
                    time.sleep(backoff_s(attempt, RETRY_BACKOFF_S, RETRY_BACKOFF_MAX_S, self._rng))
                    attempt, unreached = attempt + 1, 0
                continue  # nothing was sent, only a read, or a repeatable request: the next server
            error = error_from_response(response)
            if error is None:
                return response
            if isinstance(error, Unauthenticated) and self.credentials is not None and not renewed:
                self._tokens.forget()  # refused token (a restarted lone broker, a new password): once more, anew
                renewed = True
                continue
            if attempt >= self.retries or error.code not in retry_codes:
                raise error
            time.sleep(backoff_s(attempt, RETRY_BACKOFF_S, RETRY_BACKOFF_MAX_S, self._rng))
            attempt += 1

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        return _answer(model, self.request("GET", path, params=params))

    def _post(self, path: str, body: BaseModel | None, model: type[M], timeout_s: float | None = None,
              repeatable: bool = False) -> M:
        payload = body.model_dump(by_alias=True, exclude_none=True, mode="json") if body is not None else None
        return _answer(model, self.request("POST", path, json=payload, timeout_s=timeout_s, repeatable=repeatable))

    # -- users and ACLs (cluster admins) ---------------------------------------------------------------------

    def list_users(self) -> list[UserInfo]:
        return _answers(UserInfo, self.request("GET", "/v1/admin/users"))

    def upsert_user(self, name: str, password: str) -> UserInfo:
        """Create the user, or give it a new password; only the salted keys computed here are sent."""
        body = credential_spec(password).model_dump(by_alias=True, mode="json")
        return _answer(UserInfo, self.request("PUT", f"/v1/admin/users/{name}", json=body))

    def set_user_quotas(self, name: str, producer_byte_rate: int | None, consumer_byte_rate: int | None) -> UserInfo:
        """Replace the user's byte-rate quotas (bytes/s per broker; None: unlimited)."""
        body = UserQuotasSpec(producer_byte_rate=producer_byte_rate, consumer_byte_rate=consumer_byte_rate)
        return _answer(UserInfo, self.request("PUT", f"/v1/admin/users/{name}/quotas",
                                              json=body.model_dump(by_alias=True, mode="json")))

    def delete_user(self, name: str) -> None:
        self.request("DELETE", f"/v1/admin/users/{name}")

    def list_acls(self, principal: str | None = None, resource_type: str | None = None,
                  name: str | None = None) -> list[AclSpec]:
        return _answers(AclSpec, self.request("GET", "/v1/admin/acls", params={
            "principal": principal, "resourceType": resource_type, "name": name}))

    def add_acl(self, acl: AclSpec) -> AclSpec:
        return _answer(AclSpec, self.request("POST", "/v1/admin/acls", json=acl.model_dump(by_alias=True,
                                                                                           mode="json")))

    def remove_acl(self, acl: AclSpec) -> None:
        self.request("POST", "/v1/admin/acls/remove", json=acl.model_dump(by_alias=True, mode="json"))

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

    def version(self) -> BrokerVersion:
        return self._get("/v1/version", BrokerVersion)

    # -- topics ----------------------------------------------------------------------------------------------

    def list_topics(self, internal: bool = False) -> list[TopicInfo]:
        params = {"internal": "true"} if internal else None
        return _answers(TopicInfo, self.request("GET", "/v1/topics", params=params))

    def create_topic(self, spec: TopicCreate) -> TopicInfo:
        body = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        return _answer(TopicInfo, self.request("POST", "/v1/topics", json=body))

    def describe_topic(self, name: str, details: bool = True) -> TopicInfo:
        """The topic; without `details` only its metadata (partition count, settings), at once from any broker."""
        return self._get(f"/v1/topics/{name}", TopicInfo, details=None if details else "false")

    def update_topic(self, name: str, update: TopicUpdate) -> TopicInfo:
        body = update.model_dump(by_alias=True, exclude_none=True, mode="json")
        return _answer(TopicInfo, self.request("PATCH", f"/v1/topics/{name}", json=body))

    def delete_topic(self, name: str) -> None:
        self.request("DELETE", f"/v1/topics/{name}")

    # -- records ---------------------------------------------------------------------------------------------

    def produce(self, topic: str, records: Iterable[ProduceRecord], **options: Any) -> ProduceResponse:
        """Write records; returns each one's (partition, offset) in call order. `options` are `ProduceRequest`'s
        fields (acks, partition, encoding). Idempotent and retried (`http_producer.py`) unless the client is made
        with `idempotent=False`, acks is 0, or the caller stamps the request itself (`producer_id`)."""
        request = ProduceRequest(records=list(records), **options)
        if not self.idempotent or request.acks is Acks.NONE or request.producer_id is not None:
            body = request.model_dump(by_alias=True, exclude_none=True, mode="json")
            return _answer(ProduceResponse,
                           self.request("POST", f"/v1/topics/{topic}/records", json=body, retry_codes=frozenset()))
        return self.producer.produce(topic, request)

    @property
    def produce_retries(self) -> int:
        """Produce requests sent again so far (through failovers), for reports."""
        return self.producer.retries

    def produce_once(self, topic: str, body: dict[str, Any], timeout_s: float) -> ProduceResponse:
        """One produce request to the current server, not retried; a server that cannot be reached or does not
        answer is left for the next attempt (`Unavailable`). The idempotent producer's transport."""
        server = self.servers.current
        try:
            response = self._send(server, "POST", f"/v1/topics/{topic}/records", json=body, timeout_s=timeout_s)
        except _Unreached as exc:
            self.servers.failed(server)
            raise exc.error from exc
        error = error_from_response(response)
        if error is not None:
            raise error
        return _answer(ProduceResponse, response)

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
        joined = self._post(f"/v1/groups/{group}/members", JoinRequest(
            member_id=member_id, client_id=client_id, host=host, topics=topics), JoinResponse)
        self.memberships.add(group, joined.member_id)
        return joined

    def heartbeat(self, group: str, member_id: str, generation: int) -> HeartbeatResponse:
        return self._post(f"/v1/groups/{group}/members/{member_id}/heartbeat",
                          HeartbeatRequest(generation=generation), HeartbeatResponse)

    def leave_group(self, group: str, member_id: str) -> None:
        try:
            self.request("DELETE", f"/v1/groups/{group}/members/{member_id}")
        finally:
            self.memberships.discard(group, member_id)
            self.positions.forget(group, member_id)

    def leave_groups(self) -> None:
        """Leave every group this client joined or consumed from as a member (`close` does this); best-effort:
        one that cannot be left now expires after its session timeout."""
        for group, member_id in self.memberships.snapshot():
            try:
                self.leave_group(group, member_id)
            except (UnknownMember, GroupNotFound):
                pass  # gone already: its session expired, it was removed, or it never came to be
            except GoQueueError as exc:  # not an error of the caller's: the member expires after its session
                log.info("group.leave_failed", extra={"group": group, "member": member_id, "error": exc.message})

    def _leave_now(self, group: str, member_id: str) -> None:
        """Leave from a hook (`membership.py`): on connections of its own, a short timeout, each server once."""
        with httpx.Client(timeout=LEAVE_TIMEOUT_S) as http:
            for server in self.servers.servers:
                try:
                    response = http.delete(f"{server}/v1/groups/{group}/members/{member_id}")
                except httpx.HTTPError:
                    continue
                error = error_from_response(response)
                if error is None or isinstance(error, UnknownMember | GroupNotFound):
                    return
                raise error

    def consume(self, group: str, request: ConsumeRequest) -> ConsumeResponse:
        """Long-polls up to `request.wait_ms`; the HTTP timeout allows for it. A shared consume makes this client
        a member of the group (left on `close`)."""
        if request.consumer_id is not None:
            self.memberships.add(group, request.consumer_id)
        stamped = self.positions.stamp(group, request)  # ordered: client-held positions make it repeatable
        response = self._post(f"/v1/groups/{group}/consume", stamped, ConsumeResponse,
                              timeout_s=request.wait_ms / 1000 + 30, repeatable=stamped.positions is not None)
        self.positions.advance(group, stamped, response)
        return response

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

    # -- the operator's admin API (docs/OPERATOR.md) ---------------------------------------------------------

    def pre_restart_check(self, broker_id: int) -> RestartCheck:
        return self._get(f"{ADMIN_CLUSTER}/brokers/{broker_id}/pre-restart-check", RestartCheck)

    def caught_up(self, broker_id: int) -> CaughtUp:
        return self._get(f"{ADMIN_CLUSTER}/brokers/{broker_id}/caught-up", CaughtUp)

    def held_replicas(self, broker_id: int) -> HeldReplicas:
        return self._get(f"{ADMIN_CLUSTER}/brokers/{broker_id}/replicas", HeldReplicas)

    def transfer_leadership(self, broker_id: int) -> LeadershipTransfer:
        return self._post(f"{ADMIN_CLUSTER}/brokers/{broker_id}/transfer-leadership", None, LeadershipTransfer)

    def drain(self, broker_id: int) -> DrainProgress:
        return self._post(f"{ADMIN_CLUSTER}/brokers/{broker_id}/drain", None, DrainProgress)

    def rebalance(self) -> RebalanceAccepted:
        return self._post(f"{ADMIN_CLUSTER}/rebalance", None, RebalanceAccepted)

    # -- replica reassignment: plan, execute, follow, cancel -------------------------------------------------

    def plan_reassignment(self, goals: ReassignmentGoals) -> ReassignmentPlan:
        return self._post(f"{ADMIN_CLUSTER}/reassignments/plan", goals, ReassignmentPlan)

    def execute_reassignment(self, moves: Sequence[ReplicaMove], throttle: int | None = None) -> ReassignmentStarted:
        return self._post(f"{ADMIN_CLUSTER}/reassignments", ReassignmentExecute(moves=list(moves), throttle=throttle),
                          ReassignmentStarted)

    def reassignment_progress(self) -> ReassignmentProgress:
        return self._get(f"{ADMIN_CLUSTER}/reassignments", ReassignmentProgress)

    def cancel_reassignment(self, partitions: Sequence[TopicPartition] = ()) -> ReassignmentCancelled:
        return self._post(f"{ADMIN_CLUSTER}/reassignments/cancel", ReassignmentCancel(partitions=list(partitions)),
                          ReassignmentCancelled)
