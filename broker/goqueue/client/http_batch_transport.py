"""The batching producer over HTTP binary batches (`POST /v1/topics/{t}/partitions/{p}/batches`), on asyncio.

Addresses as everywhere (`bootstrap.py`): a connection that cannot be made (nothing was sent) moves on to the next
server at once; a server that took the request and gave no answer moves the *next* request on and raises
`Unavailable`, which the producer's delivery loop resends (idempotent: a written batch is answered with its
offsets). `headers` go with every request (credentials, for instance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx

from goqueue.client.bootstrap import ServerList
from goqueue.client.http import error_from_response
from goqueue.errors import Unavailable
from goqueue.models import ANSWER, Acks, ProduceResponse, TopicInfo

BATCH_MEDIA_TYPE = "application/vnd.goqueue.batch"  # the broker's binary batch body (api/http/routes/records.py)
DEFAULT_TIMEOUT_S = 30.0


class HttpBatchTransport:
    def __init__(self, servers: str | Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 headers: Mapping[str, str] | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.servers = ServerList(servers)
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(timeout=timeout_s, headers=dict(headers or {}), transport=transport)

    async def partition_count(self, topic: str) -> int:
        response = await self._request("GET", f"/v1/topics/{topic}", self.timeout_s, params={"details": "false"})
        return TopicInfo.model_validate_json(response.content, context=ANSWER).partitions

    async def send_batch(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> int:
        response = await self._request(
            "POST", f"/v1/topics/{topic}/partitions/{partition}/batches", timeout_s, content=batch,
            params={"acks": acks.value}, headers={"content-type": BATCH_MEDIA_TYPE})
        offsets = ProduceResponse.model_validate_json(response.content, context=ANSWER).offsets
        return offsets[0].offset if offsets else -1

    async def _request(self, method: str, path: str, timeout_s: float, *, content: bytes | None = None,
                       params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        unreached = Unavailable(f"none of {self.servers} can be reached")
        for _ in range(len(self.servers)):
            server = self.servers.current
            try:
                response = await self._http.request(method, server + path, content=content, params=params,
                                                    headers=headers, timeout=timeout_s)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self.servers.failed(server)
                unreached = Unavailable(f"cannot reach {server}: {exc}")
                continue  # nothing was sent: the next server at once
            except httpx.TimeoutException as exc:
                self.servers.failed(server)
                raise Unavailable(f"{server} did not answer in time ({method} {path})") from exc
            except httpx.HTTPError as exc:
                self.servers.failed(server)
                raise Unavailable(f"no answer from {server}: {exc}") from exc
            error = error_from_response(response)
            if error is not None:
                raise error
            return response
        raise unreached

    async def close(self) -> None:
        await self._http.aclose()
