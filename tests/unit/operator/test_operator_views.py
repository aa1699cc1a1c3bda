"""views.py mirrors the CRDs: every CRD spec property has a view field and the reverse; defaults agree."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from crd_schema import JSON, load_crds, root_schema
from pydantic import BaseModel

from goqueue_operator.rebalance.view import RebalanceSpec
from goqueue_operator.users.view import UserSpec
from goqueue_operator.views import (
    ClusterSpec,
    ClusterView,
    GroupSpec,
    GroupView,
    SpecError,
    TopicSpec,
    TopicView,
)

pytestmark = pytest.mark.unit

CRDS = load_crds()
SPEC_MODELS: dict[str, type[BaseModel]] = {
    "GoQueueCluster": ClusterSpec, "GoQueueTopic": TopicSpec, "GoQueueConsumerGroup": GroupSpec,
    "GoQueueUser": UserSpec, "GoQueueRebalance": RebalanceSpec,
}


def crd_paths(schema: JSON, prefix: str = "") -> set[str]:
    """Dotted paths of every property; maps (additionalProperties) and free-form objects are leaves."""
    paths: set[str] = set()
    for name, prop in schema.get("properties", {}).items():
        here = f"{prefix}{name}"
        paths.add(here)
        paths |= crd_paths(prop, here + ".")
        if "properties" in prop.get("items", {}):
            paths |= crd_paths(prop["items"], here + "[].")
    return paths


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(model, is_list) when the annotation is a model, an optional model or a list of models."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            model, is_list = _model_of(arg)
            if model is not None:
                return model, is_list
        return None, False
    if origin is list:
        model, _ = _model_of(typing.get_args(annotation)[0])
        return model, model is not None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def model_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        here = f"{prefix}{field.alias or name}"
        paths.add(here)
        nested, is_list = _model_of(field.annotation)
        if nested is not None:
            paths |= model_paths(nested, here + ("[]." if is_list else "."))
    return paths


@pytest.mark.parametrize("kind", sorted(SPEC_MODELS))
def test_every_crd_property_has_a_view_field_and_the_reverse(kind: str) -> None:
    crd = crd_paths(root_schema(CRDS[kind])["properties"]["spec"])
    view = model_paths(SPEC_MODELS[kind])
    assert sorted(crd - view) == [], f"{kind}: CRD properties the view does not parse"
    assert sorted(view - crd) == [], f"{kind}: view fields the CRD does not define (the API server prunes them)"


def apply_defaults(schema: JSON, value: Any) -> Any:
    """What the API server's structural defaulting does to `value`."""
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    result = dict(value)
    for name, prop in schema["properties"].items():
        if name not in result and "default" in prop:
            result[name] = prop["default"]
        if name in result:
            result[name] = apply_defaults(prop, result[name])
    return result


REQUIRED = {"GoQueueCluster": {}, "GoQueueTopic": {"clusterRef": {"name": "c"}},
            "GoQueueConsumerGroup": {"clusterRef": {"name": "c"}},
            "GoQueueUser": {"clusterRef": {"name": "c"}, "authentication": {"type": "scram"},
                            "authorization": {"acls": [{"resource": {"type": "topic", "name": "t"},
                                                        "operations": ["produce"]}]}},
            "GoQueueRebalance": {"clusterRef": {"name": "c"}, "goals": {"balance": True}}}


@pytest.mark.parametrize("kind", sorted(SPEC_MODELS))
def test_view_defaults_are_the_crd_defaults(kind: str) -> None:
    """A spec defaulted by the API server parses to the same view as one the view defaults itself."""
    spec_schema = root_schema(CRDS[kind])["properties"]["spec"]
    minimal = REQUIRED[kind]
    model = SPEC_MODELS[kind]
    assert model.model_validate(apply_defaults(spec_schema, minimal)) == model.model_validate(minimal)


def cluster_body(**spec: Any) -> JSON:
    return {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueCluster",
            "metadata": {"name": "goqueue", "namespace": "goqueue", "uid": "u-1", "generation": 4}, "spec": spec}


def test_cluster_view_parses_metadata_spec_and_the_persisted_status() -> None:
    body = cluster_body(replicas=5, storage={"size": "20Gi"})
    body["status"] = {"storage": {"size": "10Gi", "phase": "PatchingClaims"}, "readyReplicas": 3,
                      "rollout": {"currentPod": "goqueue-2", "since": "2025-01-01T00:00:00Z"}}
    view = ClusterView.from_body(body, image_repository="registry.local/goqueue")
    assert (view.name, view.namespace, view.meta.uid, view.meta.generation) == ("goqueue", "goqueue", "u-1", 4)
    assert view.spec.replicas == 5
    assert view.applied_storage_size == "10Gi"  # the StatefulSet's claim template, until the resize re-creates it
    assert view.record.storage.phase == "PatchingClaims"
    assert view.record.rollout.current_pod == "goqueue-2"
    assert view.image == "registry.local/goqueue:0.1.0"


def test_explicit_image_wins_over_the_version() -> None:
    view = ClusterView.from_body(cluster_body(version="0.2.0", image="example.com/gq@sha256:abc"))
    assert view.image == "example.com/gq@sha256:abc"


def test_applied_storage_size_defaults_to_the_spec() -> None:
    assert ClusterView.from_body(cluster_body(storage={"size": "3Gi"})).applied_storage_size == "3Gi"


@pytest.mark.parametrize(("value", "paused"), [("true", True), ("True", True), ("false", False), ("", False)])
def test_pause_annotation(value: str, paused: bool) -> None:
    body = cluster_body()
    body["metadata"]["annotations"] = {"goqueue.io/paused": value, "goqueue.io/rollout-paused": value}
    view = ClusterView.from_body(body)
    assert view.paused is paused
    assert view.rollout_paused is paused


def test_a_body_that_does_not_parse_names_the_field() -> None:
    with pytest.raises(SpecError, match=r"spec\.replicas"):
        ClusterView.from_body(cluster_body(replicas="many"))
    with pytest.raises(SpecError, match=r"spec\.clusterRef"):
        TopicView.from_body({"metadata": {"name": "t", "namespace": "n"}, "spec": {}})


def test_topic_and_group_names_default_to_metadata_name() -> None:
    topic = TopicView.from_body({"metadata": {"name": "orders", "namespace": "n"},
                                 "spec": {"clusterRef": {"name": "goqueue"}}})
    assert (topic.broker_name, topic.cluster_name) == ("orders", "goqueue")
    named = TopicView.from_body({"metadata": {"name": "orders", "namespace": "n"},
                                 "spec": {"clusterRef": {"name": "goqueue"}, "topicName": "Orders_V2"}})
    assert named.broker_name == "Orders_V2"
    group = GroupView.from_body({"metadata": {"name": "workers", "namespace": "n"},
                                 "spec": {"clusterRef": {"name": "goqueue"}, "groupName": "Workers"},
                                 "status": {"offsetResets": [{"id": "r1", "phase": "Applied"}], "lag": 3}})
    assert group.broker_name == "Workers"
    assert [r.id for r in group.record.offset_resets] == ["r1"]
