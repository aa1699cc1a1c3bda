"""Input ranges (goqueue/limits.py) are enforced alike by the models (HTTP, CLIs, operator) and the gRPC converters,
stored out-of-range settings load clamped, and the OpenAPI document's errors agree with the error taxonomy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from goqueue import limits
from goqueue.api.grpc import convert
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.http.body import lone_surrogate_problem
from goqueue.errors import InvalidRequest, error_for_code
from goqueue.models import GroupConfig, ProduceRequest, TopicConfig, TopicCreate, load_stored, topic_name_problem

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

# (ProduceRequest field, proto Producer/ProduceRequest field, range): the overflowing produce fields
PRODUCE_FIELDS = [("producerId", "producer_id", limits.PRODUCER_ID),
                  ("producerEpoch", "producer_epoch", limits.PRODUCER_EPOCH),
                  ("baseSequence", "base_sequence", limits.BASE_SEQUENCE)]


def _produce(**fields: Any) -> dict[str, Any]:
    return {"producerId": 1, "producerEpoch": 0, "baseSequence": 0, "partition": 0, "records": [{"value": "a"}],
            **fields}


@pytest.mark.parametrize(("field", "proto_field", "bounds"), PRODUCE_FIELDS)
def test_producer_fields_have_one_range_on_http_and_grpc(field: str, proto_field: str, bounds: limits.Range) -> None:
    ProduceRequest.model_validate(_produce(**{field: bounds.maximum}))
    with pytest.raises(ValidationError):
        ProduceRequest.model_validate(_produce(**{field: int(bounds.maximum) + 1}))
    # the proto field is as wide as the range, so only the range can refuse what fits the wire
    at_max = pb.Producer(**{proto_field: int(bounds.maximum)})
    assert getattr(convert.producer_from_proto(at_max), proto_field) == bounds.maximum
    below = pb.Producer(**{proto_field: -1}) if proto_field != "producer_id" else pb.Producer(producer_id=-1)
    with pytest.raises(InvalidRequest, match=proto_field):
        convert.producer_from_proto(below)


def test_record_timestamp_and_partition_ranges_on_http_and_grpc() -> None:
    too_late = int(limits.TIMESTAMP_MS.maximum) + 1
    with pytest.raises(ValidationError, match="timestampMs"):
        ProduceRequest.model_validate({"records": [{"value": "a", "timestampMs": 100000000000000000000}]})
    with pytest.raises(InvalidRequest, match="timestamp_ms"):
        convert.records_from_proto([pb.Record(value=b"a", timestamp_ms=too_late)])
    with pytest.raises(ValidationError, match="partition"):
        ProduceRequest.model_validate({"partition": 4294967296, "records": [{"value": "a"}]})
    with pytest.raises(InvalidRequest, match="partition"):
        convert.produce_from_proto(pb.ProduceRequest(topic="t", partition=limits.MAX_PARTITIONS_PER_TOPIC,
                                                     records=[pb.Record(value=b"a")]))


def test_settings_out_of_range_are_refused_before_they_are_stored() -> None:
    with pytest.raises(ValidationError, match="visibilityTimeout"):
        GroupConfig.model_validate({"visibilityTimeout": 1e308})
    with pytest.raises(ValidationError, match="retentionMaxSize"):
        TopicConfig.model_validate({"retentionMaxSize": 1180591620717411303424})
    with pytest.raises(InvalidRequest, match="retentionMaxAge"):
        convert.topic_config_from_proto(pb.TopicConfig(retention_max_age_s=1e308, retention_max_bytes=1))
    with pytest.raises(ValidationError, match="uncleanLeaderElection"):
        TopicConfig.model_validate({"uncleanLeaderElection": 0})


def test_a_stored_out_of_range_setting_loads_clamped_and_says_so() -> None:
    config, fixed = load_stored(GroupConfig, {"visibilityTimeout": 1e308, "maxDeliveries": 3, "newerSetting": 1})
    assert config.visibility_timeout_s == limits.VISIBILITY_TIMEOUT_S.maximum
    assert config.max_deliveries == 3
    assert [(f.field, f.stored) for f in fixed] == [("visibilityTimeout", 1e308)]
    topic, fixed = load_stored(TopicConfig, {"retentionMaxSize": 2**70, "segmentBytes": 10})
    assert (topic.retention_max_bytes, topic.segment_bytes) == (limits.INT64_MAX, limits.SEGMENT_BYTES.minimum)
    assert convert.topic_config_to_proto(topic).retention_max_bytes == limits.INT64_MAX  # fits the wire again
    assert {f.field for f in fixed} == {"retentionMaxSize", "segmentBytes"}


def test_the_longest_topic_name_fits_every_on_disk_name() -> None:
    longest = "a" * limits.TOPIC_NAME_MAX_LENGTH
    assert topic_name_problem(longest) is None
    assert topic_name_problem(longest + "a") is not None
    aside = f"{longest}-{limits.MAX_PARTITIONS_PER_TOPIC - 1}.corrupt-{2**31 + 10**9}"  # a 10-digit time
    assert len(aside.encode()) <= limits.FILE_NAME_MAX_BYTES
    TopicCreate(name=longest, partitions=limits.MAX_PARTITIONS_PER_TOPIC)


def test_lone_surrogates_are_found_and_pairs_are_not() -> None:
    assert lone_surrogate_problem(b'{"records":[{"key":"\\ud800","value":"x"}]}') == \
        "records.0.key: text is not valid Unicode (a lone UTF-16 surrogate)"
    assert lone_surrogate_problem(b'{"records":[{"value":"\\ud83d\\ude00"}]}') is None
    assert lone_surrogate_problem(b'{"\\udc00":1}') is not None
    assert lone_surrogate_problem(b"not json \\ud800") is None  # the route's own parser answers that


def _openapi() -> dict[str, Any]:
    from goqueue.api.http.app import create_app
    from goqueue.config import Settings
    from goqueue.metrics import BrokerMetrics

    # the document needs the routes only; the app reads the broker's settings and metrics when it is built
    stand_in = SimpleNamespace(settings=Settings(), metrics=BrokerMetrics())
    return create_app(broker=stand_in).openapi()  # type: ignore[arg-type]


def test_every_route_documents_its_errors_with_codes_of_the_taxonomy() -> None:
    paths = _openapi()["paths"]
    assert paths
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path} documents FastAPI's 422, which is never answered"
            for must in ("400", "500"):  # every route: a malformed request, a bug
                assert must in responses, f"{method} {path} does not document {must}"
            for status, response in responses.items():
                if not status.startswith(("4", "5")) or path == "/readyz":
                    continue
                schema = response["content"]["application/json"]["schema"]
                codes = schema["properties"]["error"]["properties"]["code"]["enum"]
                for code in codes:
                    cls = error_for_code(code)
                    assert cls.code == code, f"{method} {path}: {code} is not in goqueue.errors"
                    assert str(cls.http_status) == status, f"{method} {path}: {code} is {cls.http_status}, not {status}"


def test_crd_integer_bounds_are_the_api_ranges() -> None:
    bounds = {("goqueue.io_goqueuetopics.yaml", "partitions"): limits.PARTITIONS,
              ("goqueue.io_goqueuetopics.yaml", "replicationFactor"): limits.REPLICATION_FACTOR,
              ("goqueue.io_goqueuetopics.yaml", "config.minInsyncReplicas"): limits.MIN_INSYNC_REPLICAS,
              ("goqueue.io_goqueueconsumergroups.yaml", "maxDeliveries"): limits.MAX_DELIVERIES,
              ("goqueue.io_goqueueconsumergroups.yaml", "inflightCapacity"): limits.INFLIGHT_CAPACITY}
    for (crd, dotted), expected in bounds.items():
        spec = yaml.safe_load((REPO / "crds" / crd).read_text())["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"]["properties"]["spec"]
        found = _find(spec, dotted.split("."))
        assert (found.get("minimum"), found.get("maximum")) == (expected.minimum, expected.maximum), (crd, dotted)
    topic_name = _find(yaml.safe_load((REPO / "crds/goqueue.io_goqueuetopics.yaml").read_text())["spec"][
        "versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"], ["topicName"])
    assert topic_name["maxLength"] == limits.TOPIC_NAME_MAX_LENGTH


def _find(schema: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """A property by name anywhere below `schema` (group settings are nested under `config`)."""
    if not names:
        return schema
    for key, child in schema.get("properties", {}).items():
        if key == names[0]:
            found = _find(child, names[1:])
            if found is not None:
                return found
    for child in schema.get("properties", {}).values():
        if isinstance(child, dict) and (found := _find_opt(child, names)) is not None:
            return found
    raise KeyError(names)


def _find_opt(schema: dict[str, Any], names: list[str]) -> dict[str, Any] | None:
    try:
        return _find(schema, names)
    except KeyError:
        return None
