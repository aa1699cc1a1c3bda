"""The HTTP API of a real broker process: topics, produce/fetch (JSON and binary), long-poll, idempotence,
health and metrics, and one typed error for every kind of bad input."""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from broker_process import BrokerProcess

from goqueue.storage import batch as batches

pytestmark = pytest.mark.integration

BrokerFactory = Callable[..., BrokerProcess]


@pytest.fixture
def http(module_broker: BrokerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_broker.url, timeout=30) as client:
        yield client


def create(http: httpx.Client, name: str, partitions: int = 1, **config: object) -> dict[str, object]:
    response = http.post("/v1/topics", json={"name": name, "partitions": partitions, "config": config})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def fetch_all(http: httpx.Client, topic: str, partition: int = 0) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    offset = 0
    while True:
        body = http.get(f"/v1/topics/{topic}/partitions/{partition}/records",
                        params={"offset": offset, "maxRecords": 1000}).json()
        records.extend(body["records"])
        if body["nextOffset"] >= body["highWatermark"]:
            return records
        offset = body["nextOffset"]


# -- topics ------------------------------------------------------------------------------------------------------

def test_topic_lifecycle(http: httpx.Client) -> None:
    info = create(http, "lifecycle", partitions=3, retentionMaxAge="2h", cleanupPolicy="delete")
    assert info["partitions"] == 3
    assert info["config"]["retentionMaxAge"] == 7200  # type: ignore[index]
    assert "lifecycle" in [t["name"] for t in http.get("/v1/topics").json()]

    duplicate = http.post("/v1/topics", json={"name": "lifecycle"})
    assert duplicate.status_code == 409
    assert error_code(duplicate) == "TOPIC_ALREADY_EXISTS"

    grown = http.patch("/v1/topics/lifecycle", json={"partitions": 5})
    assert grown.status_code == 200
    assert [p["partition"] for p in grown.json()["partitionDetails"]] == [0, 1, 2, 3, 4]
    shrink = http.patch("/v1/topics/lifecycle", json={"partitions": 2})
    assert shrink.status_code == 400
    assert error_code(shrink) == "PARTITIONS_CANNOT_SHRINK"

    changed = http.patch("/v1/topics/lifecycle", json={"config": {"retentionMaxAge": "1h"}})
    assert changed.json()["config"]["retentionMaxAge"] == 3600

    assert http.delete("/v1/topics/lifecycle").status_code == 204
    gone = http.get("/v1/topics/lifecycle")
    assert gone.status_code == 404
    assert error_code(gone) == "TOPIC_NOT_FOUND"
    create(http, "lifecycle")  # the name is free again, with an empty log
    assert http.get("/v1/topics/lifecycle").json()["partitionDetails"][0]["endOffset"] == 0


@pytest.mark.parametrize("name", ["", "has space", "slash/name", "..", "x" * 250, "ünïcode", "t.deleted"])
def test_invalid_topic_names(http: httpx.Client, name: str) -> None:
    response = http.post("/v1/topics", json={"name": name})
    assert response.status_code == 400
    assert error_code(response) == "INVALID_TOPIC_NAME"


@pytest.mark.parametrize("body", [
    {"name": "p0", "partitions": 0},
    {"name": "rf0", "replicationFactor": 0},
    {"name": "badpolicy", "config": {"cleanupPolicy": "shred"}},
    {"name": "badage", "config": {"retentionMaxAge": "soon"}},
    {"name": "extra", "colour": "blue"},
])
def test_invalid_topic_settings(http: httpx.Client, body: dict[str, object]) -> None:
    response = http.post("/v1/topics", json=body)
    assert response.status_code == 400
    assert error_code(response) == "INVALID_REQUEST"
    assert response.json()["error"]["message"]


# -- produce and fetch -------------------------------------------------------------------------------------------

def test_produce_fetch_roundtrip(http: httpx.Client) -> None:
    create(http, "roundtrip")
    response = http.post("/v1/topics/roundtrip/records", json={"records": [
        {"key": "k1", "value": "hello", "headers": {"trace": "abc"}},
        {"value": "no key"},
        {"key": "k2", "value": None},
    ]})
    assert response.status_code == 200, response.text
    assert [o["offset"] for o in response.json()["offsets"]] == [0, 1, 2]
    records = fetch_all(http, "roundtrip")
    assert [(r["key"], r["value"], r["headers"]) for r in records] == [
        ("k1", "hello", {"trace": "abc"}), (None, "no key", {}), ("k2", None, {})]
    assert all(r["encoding"] == "utf8" for r in records)


def test_binary_values_roundtrip_as_base64(http: httpx.Client) -> None:
    create(http, "binary")
    raw = bytes(range(256))
    body = {"encoding": "base64", "records": [{"key": base64.b64encode(b"\xff").decode(),
                                               "value": base64.b64encode(raw).decode()}]}
    assert http.post("/v1/topics/binary/records", json=body).status_code == 200
    record = fetch_all(http, "binary")[0]
    assert record["encoding"] == "base64"
    assert base64.b64decode(str(record["value"])) == raw
    bad = http.post("/v1/topics/binary/records", json={"encoding": "base64", "records": [{"value": "!!notb64"}]})
    assert bad.status_code == 400
    assert "records.0.value" in bad.json()["error"]["message"]


def test_keys_choose_partitions_and_keyless_records_spread(http: httpx.Client) -> None:
    create(http, "spread", partitions=4)
    keyed = http.post("/v1/topics/spread/records", json={"records": [{"key": "same", "value": str(i)}
                                                                      for i in range(20)]}).json()
    assert len({o["partition"] for o in keyed["offsets"]}) == 1
    keyless = http.post("/v1/topics/spread/records", json={"records": [{"value": str(i)} for i in range(8)]}).json()
    assert {o["partition"] for o in keyless["offsets"]} == {0, 1, 2, 3}


def test_binary_batch_produce_and_fetch(http: httpx.Client) -> None:
    create(http, "batches", partitions=2)
    data = bytes(batches.build_batch([(b"k", b"v%d" % i, []) for i in range(100)], int(time.time() * 1000)))
    response = http.post("/v1/topics/batches/partitions/1/batches", content=data)
    assert response.status_code == 200, response.text
    assert [o["offset"] for o in response.json()["offsets"]] == list(range(100))
    fetched = http.get("/v1/topics/batches/partitions/1/batches", params={"offset": 0})
    assert fetched.headers["x-goqueue-high-watermark"] == "100"
    records = batches.decode_records(fetched.content)
    assert [r.value for r in records] == [b"v%d" % i for i in range(100)]

    tampered = bytearray(data)
    tampered[-1] ^= 0xFF
    rejected = http.post("/v1/topics/batches/partitions/1/batches", content=bytes(tampered))
    assert rejected.status_code == 400
    assert "CRC" in rejected.json()["error"]["message"]
    garbage = http.post("/v1/topics/batches/partitions/1/batches", content=b"not a batch")
    assert garbage.status_code == 400


def fetches_waiting(http: httpx.Client, topic: str) -> float:
    """The broker's count of long-polls on `topic` that found nothing and wait for records now."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'goqueue_fetches_waiting{{topic="{topic}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_long_poll_returns_when_a_record_arrives(http: httpx.Client, module_broker: BrokerProcess) -> None:
    create(http, "longpoll")
    answers: list[httpx.Response] = []

    def long_poll() -> None:
        with httpx.Client(base_url=module_broker.url, timeout=30) as own:
            answers.append(own.get("/v1/topics/longpoll/partitions/0/records",
                                   params={"offset": 0, "waitMs": 10_000}))

    poll = threading.Thread(target=long_poll)
    poll.start()
    # The record is produced only once the fetch has found nothing and waits: it must be woken by the append.
    wait_until(lambda: fetches_waiting(http, "longpoll") == 1, 10)
    produced = time.monotonic()
    assert http.post("/v1/topics/longpoll/records", json={"records": [{"value": "late"}]}).status_code == 200
    poll.join(15)
    assert [r["value"] for r in answers[0].json()["records"]] == ["late"]
    assert time.monotonic() - produced < 5  # woke on the append, not at the 10 s deadline
    assert fetches_waiting(http, "longpoll") == 0

    empty = http.get("/v1/topics/longpoll/partitions/0/records", params={"offset": 1, "waitMs": 200}).json()
    assert empty["records"] == []
    assert empty["nextOffset"] == 1


def test_idempotent_producer_retry_is_not_duplicated(http: httpx.Client) -> None:
    create(http, "idempotent")
    request = {"producerId": 42, "baseSequence": 0, "partition": 0, "records": [{"value": "a"}, {"value": "b"}]}
    first = http.post("/v1/topics/idempotent/records", json=request).json()
    retry = http.post("/v1/topics/idempotent/records", json=request).json()
    assert retry["offsets"] == first["offsets"]
    assert retry["duplicate"] is True
    following = {**request, "baseSequence": 2, "records": [{"value": "c"}]}
    assert http.post("/v1/topics/idempotent/records", json=following).json()["offsets"][0]["offset"] == 2
    gap = http.post("/v1/topics/idempotent/records", json={**request, "baseSequence": 10})
    assert gap.status_code == 409
    assert error_code(gap) == "OUT_OF_ORDER_SEQUENCE"
    assert [r["value"] for r in fetch_all(http, "idempotent")] == ["a", "b", "c"]


def test_offsets_lookup_by_time(http: httpx.Client) -> None:
    create(http, "bytime")
    http.post("/v1/topics/bytime/records", json={"records": [{"value": "old", "timestampMs": 1000}]})
    http.post("/v1/topics/bytime/records", json={"records": [{"value": "new", "timestampMs": 5000}]})
    offsets = http.get("/v1/topics/bytime/partitions/0/offsets", params={"timestampMs": 3000}).json()
    assert offsets["forTimestamp"] == 1
    assert (offsets["earliest"], offsets["latest"]) == (0, 2)


# -- bad input ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), [
    ("POST", "/v1/topics/badinput/records", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     400, "INVALID_REQUEST"),
    ("POST", "/v1/topics/badinput/records", {"json": {"records": []}}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/topics/badinput/records", {"json": {"records": [{"value": 5}]}}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/topics/badinput/records", {"json": {"records": [{"value": "x"}], "acks": "2"}}, 400,
     "INVALID_REQUEST"),
    ("POST", "/v1/topics/badinput/records", {"json": {"records": [{"value": "x" * 2_000_000}]}}, 413,
     "RECORD_TOO_LARGE"),
    ("POST", "/v1/topics/nosuchtopic/records", {"json": {"records": [{"value": "x"}]}}, 404, "TOPIC_NOT_FOUND"),
    ("POST", "/v1/topics/badinput/records", {"json": {"records": [{"value": "x", "partition": 7}]}}, 404,
     "PARTITION_NOT_FOUND"),
    ("GET", "/v1/topics/badinput/partitions/3/records", {}, 404, "PARTITION_NOT_FOUND"),
    ("GET", "/v1/topics/badinput/partitions/0/records", {"params": {"offset": 99}}, 416, "OFFSET_OUT_OF_RANGE"),
    ("GET", "/v1/topics/badinput/partitions/0/records", {"params": {"offset": -1}}, 400, "INVALID_REQUEST"),
    ("GET", "/v1/topics/badinput/partitions/zero/records", {}, 400, "INVALID_REQUEST"),
    ("GET", "/v1/no/such/route", {}, 404, "NOT_FOUND"),
    ("PUT", "/v1/topics", {}, 405, "METHOD_NOT_ALLOWED"),
    ("POST", "/v1/topics/badinput/records", {"json": {"producerId": 1, "records": [{"value": "x"}]}}, 400,
     "INVALID_REQUEST"),
])
def test_bad_input_gets_one_typed_error(http: httpx.Client, method: str, path: str, kwargs: dict[str, object],
                                        status: int, code: str) -> None:
    if http.get("/v1/topics/badinput").status_code == 404:
        create(http, "badinput")
    response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert isinstance(error["retriable"], bool)


def test_compacted_topic_needs_keys(http: httpx.Client) -> None:
    create(http, "compacted-keys", cleanupPolicy="compact")
    response = http.post("/v1/topics/compacted-keys/records", json={"records": [{"value": "no key"}]})
    assert response.status_code == 400
    assert "key" in response.json()["error"]["message"]


# -- health and metrics ------------------------------------------------------------------------------------------

def test_health_readiness_docs_and_metrics(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").status_code == 200
    assert http.get("/v1/admin/health").json()["status"] == "healthy"
    assert http.get("/docs").status_code == 200
    assert "/v1/topics/{topic}/records" in http.get("/openapi.json").json()["paths"]

    create(http, "metered")
    before = http.get("/metrics").text
    http.post("/v1/topics/metered/records", json={"records": [{"value": "x"}] * 7})
    after = http.get("/metrics").text
    for name in ("goqueue_messages_total", "goqueue_message_latency_p99", "goqueue_message_latency_seconds_bucket",
                 "goqueue_disk_usage_percent", "goqueue_bytes_in_total", "goqueue_bytes_out_total",
                 "goqueue_partitions", "goqueue_log_segments", "goqueue_fsync_duration_seconds_bucket"):
        assert name in after, name
    assert 'goqueue_messages_total{topic="metered"} 7.0' in after
    assert 'goqueue_messages_total{topic="metered"}' not in before
    p99 = next(line for line in after.splitlines() if line.startswith("goqueue_message_latency_p99 "))
    assert float(p99.split()[1]) > 0


# -- maintenance end to end --------------------------------------------------------------------------------------

def test_retention_and_compaction_run_in_the_broker(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_RETENTION_CHECKINTERVAL": "200ms", "GOQUEUE_STORAGE_SEGMENTBYTES": "4096"})
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        create(http, "compacted", cleanupPolicy="compact", tombstoneRetention="0s")
        for round_ in range(20):
            http.post("/v1/topics/compacted/records", json={"records": [
                {"key": f"k{i}", "value": f"{round_}-{'x' * 50}"} for i in range(5)]})
        http.post("/v1/topics/compacted/records", json={"records": [{"key": "k0", "value": None}]})
        http.post("/v1/topics/compacted/records", json={"records": [{"key": "later", "value": "y" * 5000}]})

        def compacted() -> bool:
            values = {(r["key"], r["value"]) for r in fetch_all(http, "compacted")}
            return len(values) <= 7
        wait_until(compacted, 20)
        latest = {r["key"]: r["value"] for r in fetch_all(http, "compacted")}
        assert latest["k1"] == "19-" + "x" * 50
        assert "k0" not in latest or latest["k0"] is None

        create(http, "expiring", retentionMaxAge="1s")
        http.post("/v1/topics/expiring/records", json={"records": [{"value": "z" * 3000}] * 3})
        wait_until(lambda: http.get("/v1/topics/expiring").json()["partitionDetails"][0]["startOffset"] == 3, 20)


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.1)


# -- disk full ---------------------------------------------------------------------------------------------------

@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs: the broker's data volume fills up for real (ENOSPC), no mocking."""
    mount = tmp_path / "volume"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_full_refuses_writes_and_loses_nothing(small_volume: Path, broker_factory: BrokerFactory) -> None:
    # small_volume first: it is torn down (unmounted) after the broker has stopped
    # Partition logs on the tiny volume; metadata (the Raft journal) elsewhere, so the restart below can elect.
    broker = broker_factory(env={"GOQUEUE_STORAGE_DATADIR": str(small_volume / "data")})
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        create(http, "filling")
        acknowledged: list[str] = []
        status = 200
        for i in range(400):
            value = f"{i:06d}" + "x" * 20_000
            response = http.post("/v1/topics/filling/records", json={"records": [{"value": value}]})
            status = response.status_code
            if status != 200:
                break
            acknowledged.append(value)
        assert status == 507, "the 3 MiB volume never filled"
        assert error_code(response) == "DISK_FULL"
        assert http.get("/healthz").status_code == 200
        assert [r["value"] for r in fetch_all(http, "filling")] == acknowledged
        again = http.post("/v1/topics/filling/records", json={"records": [{"value": "y" * 50_000}]})
        assert again.status_code == 507
    broker.stop()
    broker.start()
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        assert [r["value"] for r in fetch_all(http, "filling")] == acknowledged


def metric(http: httpx.Client, sample: str, scrape: str | None = None) -> float:
    for line in (scrape if scrape is not None else http.get("/metrics").text).splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {sample} in /metrics")


def test_the_start_up_objects_are_frozen_and_collector_pauses_are_exported(http: httpx.Client) -> None:
    """`gc_pauses.py`: the started broker froze its start-up objects (a full collection no longer walks them) and
    every collection's pause is in `goqueue_gc_pause_seconds`."""
    assert metric(http, "goqueue_gc_frozen_objects") > 10_000
    create(http, "collected")
    before = metric(http, 'goqueue_gc_pause_seconds_count{generation="0"}')
    for n in range(200):  # each request allocates: young collections follow
        http.post("/v1/topics/collected/records", json={"records": [{"value": f"v{n}"}]}).raise_for_status()
    scrape = http.get("/metrics").text
    assert metric(http, 'goqueue_gc_pause_seconds_count{generation="0"}', scrape) > before
    assert metric(http, 'goqueue_gc_pause_seconds_sum{generation="0"}', scrape) > 0
