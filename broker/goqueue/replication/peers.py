"""Broker-to-broker HTTP: follower fetches, leader-epoch queries, and forwarding client requests to leaders.

Every call goes to the peer's internal listener (`broker.internalPort`, the URL `ClusterMembership.broker_url`
gives) and is signed with this broker's credential (`security/broker_credential.py`): the peer checks it before any
route runs. Any broker serves any request: a produce or fetch for a partition led elsewhere is forwarded here to the
leader's API (the client routes, JSON or binary batches, served again on the internal listener), and a request that
arrived on the internal listener is never forwarded again — if two brokers' metadata disagree for a moment, the
client gets a retriable NOT_LEADER instead of a loop. Replica traffic uses the routes under `/internal/v1/replica/`
with a msgpack body, so record batches travel as raw bytes.

A peer of the previous version (registered without an internal port, during a rolling upgrade) is sent the same
calls on its client port, where that version served them; `X-GoQueue-Forwarded: 1` marks them forwarded there.

Errors come back as the same `GoQueueError` classes the peer raised (`errors.error_from_body`); a peer that
cannot be reached is `Unavailable` (retriable).
"""

from __future__ import annotations

import base64
import functools
import ssl
from collections.abc import Generator
from typing import Any

import httpx
import msgspec

from goqueue.errors import Unavailable, error_from_body
from goqueue.http1 import Http1Pool
from goqueue.security.broker_credential import HEADER, BrokerSigner, authority

FORWARDED_HEADER = "X-GoQueue-Forwarded"
REPLICA_MEDIA_TYPE = "application/vnd.goqueue.replica+msgpack"
REPLICA_FETCH_PATH = "/internal/v1/replica/fetch"


class ReplicaFetchRequest(msgspec.Struct, array_like=True):
    replica_id: int
    max_wait_ms: int
    max_bytes: int
    partitions: list[tuple[str, int, int, int]]


class ReplicaFetchResponse(msgspec.Struct, array_like=True):
    partitions: list[tuple[str, int, str | None, int, int, bytes]]


_encode = msgspec.msgpack.Encoder().encode
_decode_fetch_response = msgspec.msgpack.Decoder(ReplicaFetchResponse).decode


class SignedByBroker(httpx.Auth):
    """Adds this broker's credential to every request (over the body, so httpx reads it first)."""

    requires_request_body = True

    def __init__(self, signer: BrokerSigner) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        request.headers[HEADER] = self.signer.credential(_receiver(url), request.method, url.raw_path,
                                                         request.content)
        yield request


class PeerClient:
    def __init__(self, signer: BrokerSigner | None, timeout_s: float = 30.0, tls: ssl.SSLContext | None = None) -> None:
        """`signer` None (a broker without cluster.password, hence without peers): calls go unsigned and any peer's
        internal listener refuses them. `tls`: the context https calls verify peers with and present this broker's
        certificate from (`security/tls.py`, reloaded in place); None: https calls to a peer fail verification."""
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        self._http = httpx.AsyncClient(timeout=timeout_s, limits=limits, headers={FORWARDED_HEADER: "1"},
                                       auth=SignedByBroker(signer) if signer is not None else None,
                                       verify=tls if tls is not None else True)
        # Follower fetches, the one call made once per replicated write, go on the lean wire: httpx would cost the
        # follower more CPU per fetch than the leader spends answering it (docs/PERFORMANCE.md, item 7).
        self._wire = Http1Pool(tls)
        self._signer = signer

    async def close(self) -> None:
        await self._http.aclose()
        await self._wire.aclose()

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"broker at {url.split('/')[2]} unreachable: {exc!r}") from exc
        if response.status_code >= 400:
            try:
                body: object = response.json()
            except ValueError:
                body = response.text
            raise error_from_body(response.status_code, body)
        return response

    # -- replication ---------------------------------------------------------------------------------------------

    async def replica_fetch(self, leader_url: str, request: ReplicaFetchRequest,
                            max_answer_bytes: int) -> ReplicaFetchResponse:
        """`max_answer_bytes`: what the answer may hold (the leader sends at least one whole batch, however large)."""
        body = _encode(request)
        url, receiver, raw_path = _fetch_target(leader_url)
        headers = {"content-type": REPLICA_MEDIA_TYPE, FORWARDED_HEADER: "1"}
        if self._signer is not None:
            headers[HEADER] = self._signer.credential(receiver, "POST", raw_path, body)
        try:
            # A resend on a new connection (the leader closed an idle one) carries the same credential: the leader
            # never read it then. Had it read the request before the connection broke, the resend is refused as a
            # replay (UNAUTHENTICATED) and the fetcher tries again after its back-off with a new credential.
            answer = await self._wire.request("POST", url, headers=headers, content=body,
                                              timeout_s=request.max_wait_ms / 1000 + 10,
                                              max_answer_bytes=max_answer_bytes)
        except httpx.HTTPError as exc:
            raise Unavailable(f"broker at {receiver.decode()} unreachable: {exc!r}") from exc
        if answer.status >= 400:
            try:
                error: object = msgspec.json.decode(answer.body)
            except msgspec.DecodeError:
                error = answer.body.decode("utf-8", "replace")
            raise error_from_body(answer.status, error)
        return _decode_fetch_response(answer.body)

    async def epoch_end_offset(self, leader_url: str, topic: str, partition: int, epoch: int) -> tuple[int, int]:
        body = (await self._request("GET", f"{leader_url}/internal/v1/replica/epoch-end", params={
            "topic": topic, "partition": partition, "epoch": epoch})).json()
        return int(body["epoch"]), int(body["endOffset"])

    async def replica_size(self, url: str, topic: str, partition: int, timeout_s: float) -> int:
        """The bytes the broker at `url` holds of a partition (a reassignment's new replica copying)."""
        body = (await self._request("GET", f"{url}/internal/v1/replica/size", params={
            "topic": topic, "partition": partition}, timeout=timeout_s)).json()
        return int(body["sizeBytes"])

    # -- forwarding ----------------------------------------------------------------------------------------------

    async def produce(self, leader_url: str, topic: str, partition: int,
                      records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int | None]],
                      acks: str, producer: dict[str, int] | None) -> tuple[list[int], bool]:
        """Forward records for one partition; returns their offsets and whether it was an idempotent retry."""
        body: dict[str, Any] = {
            "encoding": "base64", "acks": acks, "partition": partition,
            "records": [{"key": _b64(key), "value": _b64(value),
                         "headers": {k: _b64(v) for k, v in headers}, "timestampMs": ts}
                        for key, value, headers, ts in records],
            **(producer or {})}
        result = (await self._request("POST", f"{leader_url}/v1/topics/{topic}/records", json=body)).json()
        return [o["offset"] for o in result["offsets"]], bool(result.get("duplicate"))

    async def append_batch(self, leader_url: str, topic: str, partition: int, batch: bytes,
                           acks: str) -> dict[str, Any]:
        response = await self._request("POST", f"{leader_url}/v1/topics/{topic}/partitions/{partition}/batches",
                                        content=batch, params={"acks": acks})
        result: dict[str, Any] = response.json()
        return result

    async def fetch(self, leader_url: str, topic: str, partition: int, offset: int, max_bytes: int,
                    wait_s: float) -> tuple[bytes, int, int, int]:
        """(batches, high watermark, log start offset, log end offset) from the leader."""
        response = await self._request(
            "GET", f"{leader_url}/v1/topics/{topic}/partitions/{partition}/batches",
            params={"offset": offset, "maxBytes": max_bytes, "waitMs": int(wait_s * 1000)}, timeout=wait_s + 30)
        headers = response.headers
        return (response.content, int(headers["x-goqueue-high-watermark"]),
                int(headers["x-goqueue-log-start-offset"]),
                int(headers.get("x-goqueue-log-end-offset", headers["x-goqueue-high-watermark"])))

    async def partition_offsets(self, leader_url: str, topic: str, partition: int,
                                timestamp_ms: int | None, timeout_s: float = 10.0) -> dict[str, Any]:
        params = {} if timestamp_ms is None else {"timestampMs": timestamp_ms}
        result: dict[str, Any] = (await self._request(
            "GET", f"{leader_url}/v1/topics/{topic}/partitions/{partition}/offsets", params=params,
            timeout=timeout_s)).json()
        return result

    async def call_json(self, method: str, url: str, *, body: Any = None, params: dict[str, Any] | None = None,
                        headers: dict[str, str] | None = None, timeout_s: float | None = None) -> Any:
        """A forwarded call to a peer's public JSON API (consumer-group operations sent to the group's
        coordinator); None for an answer without a body (204)."""
        response = await self._request(
            method, url, json=body, params={k: v for k, v in (params or {}).items() if v is not None},
            headers=headers, timeout=httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s)
        return response.json() if response.content else None


@functools.lru_cache(maxsize=256)
def _fetch_target(leader_url: str) -> tuple[str, bytes, bytes]:
    """A leader's fetch URL, the authority its credential names and the path it signs: parsed once per leader, not
    once per fetch (httpx's URL parsing cost a follower more than its signature did)."""
    url = httpx.URL(f"{leader_url}{REPLICA_FETCH_PATH}")
    return str(url), _receiver(url), url.raw_path


def _receiver(url: httpx.URL) -> bytes:
    """The authority a signed request to `url` names (`security/broker_credential.py`)."""
    return authority(url.host, url.port or (443 if url.scheme == "https" else 80))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")

