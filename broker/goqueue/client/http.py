"""The one typed HTTP client of GoQueue, used by the CLIs, the operator and the tests.

Every error response is turned back into the `GoQueueError` subclass named by its `code`, so callers catch
`TopicNotFound` whichever door they used; a connection failure is `Unavailable`. Responses are parsed into the
same pydantic models the server produced them from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from goqueue.errors import GoQueueError, Unavailable, error_for_code
from goqueue.models import (
    FetchResponse,
    HealthStatus,
    ProduceRecord,
    ProduceRequest,
    ProduceResponse,
    StorageStats,
    TopicCreate,
    TopicInfo,
    TopicUpdate,
)

DEFAULT_SERVER = "http://localhost:8080"
M = TypeVar("M", bound=BaseModel)


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        cls = error_for_code(error["code"])
        raise cls(error["message"], **error.get("details", {}))
    except (ValueError, KeyError, TypeError):
        pass
    raise GoQueueError(f"HTTP {response.status_code} from {response.request.url}: {response.text[:200]}")


class GoQueueClient:
    def __init__(self, server: str = DEFAULT_SERVER, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GoQueueClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                timeout_s: float | None = None) -> httpx.Response:
        try:
            response = self._http.request(
                method, path, json=json, params={k: v for k, v in (params or {}).items() if v is not None},
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TimeoutException as exc:
            raise Unavailable(f"{self.server} did not answer in time ({method} {path})") from exc
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach {self.server}: {exc}") from exc
        raise_for_error(response)
        return response

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        return model.model_validate_json(self.request("GET", path, params=params).content)

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

    def list_topics(self) -> list[TopicInfo]:
        return [TopicInfo.model_validate(t) for t in self.request("GET", "/v1/topics").json()]

    def create_topic(self, spec: TopicCreate) -> TopicInfo:
        body = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        return TopicInfo.model_validate_json(self.request("POST", "/v1/topics", json=body).content)

    def describe_topic(self, name: str) -> TopicInfo:
        return self._get(f"/v1/topics/{name}", TopicInfo)

    def update_topic(self, name: str, update: TopicUpdate) -> TopicInfo:
        body = update.model_dump(by_alias=True, exclude_none=True, mode="json")
        return TopicInfo.model_validate_json(self.request("PATCH", f"/v1/topics/{name}", json=body).content)

    def delete_topic(self, name: str) -> None:
        self.request("DELETE", f"/v1/topics/{name}")

    # -- records ---------------------------------------------------------------------------------------------

    def produce(self, topic: str, records: Iterable[ProduceRecord], **options: Any) -> ProduceResponse:
        request = ProduceRequest(records=list(records), **options)
        body = request.model_dump(by_alias=True, exclude_none=True, mode="json")
        return ProduceResponse.model_validate_json(
            self.request("POST", f"/v1/topics/{topic}/records", json=body).content)

    def fetch(self, topic: str, partition: int, offset: int, *, max_records: int = 500,
              max_bytes: int = 1_048_576, wait_ms: int = 0, encoding: str | None = None) -> FetchResponse:
        return FetchResponse.model_validate_json(self.request(
            "GET", f"/v1/topics/{topic}/partitions/{partition}/records",
            params={"offset": offset, "maxRecords": max_records, "maxBytes": max_bytes, "waitMs": wait_ms,
                    "encoding": encoding},
            timeout_s=wait_ms / 1000 + 30).content)

    def offsets(self, topic: str, partition: int, timestamp_ms: int | None = None) -> dict[str, int | None]:
        result: dict[str, int | None] = self.request(
            "GET", f"/v1/topics/{topic}/partitions/{partition}/offsets",
            params={"timestampMs": timestamp_ms}).json()
        return result
