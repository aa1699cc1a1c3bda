"""The CRDs in crds/: names, subresources, printer columns, descriptions, defaults and CEL rules.

The API server is the judge of the rules themselves (tests/integration/operator/test_operator_crd_validation.py
applies invalid objects); these tests pin what a reader of `kubectl get` and `kubectl explain` relies on.
"""

from __future__ import annotations

import pytest
from crd_schema import JSON, load_crds, root_schema, version_of, walk_properties, walk_rules

from goqueue import limits

pytestmark = pytest.mark.unit

CRDS = load_crds()
KINDS = ("GoQueueCluster", "GoQueueTopic", "GoQueueConsumerGroup", "GoQueueUser", "GoQueueRebalance")


def spec_schema(kind: str) -> JSON:
    schema: JSON = root_schema(CRDS[kind])["properties"]["spec"]
    return schema


def test_exactly_the_five_kinds_are_defined() -> None:
    assert sorted(CRDS) == sorted(KINDS)


@pytest.mark.parametrize(("kind", "plural", "short"), [
    ("GoQueueCluster", "goqueueclusters", "gqc"),
    ("GoQueueTopic", "goqueuetopics", "gqt"),
    ("GoQueueConsumerGroup", "goqueueconsumergroups", "gqcg"),
    ("GoQueueUser", "goqueueusers", "gqu"),
    ("GoQueueRebalance", "goqueuerebalances", "gqrb"),
])
def test_names_group_version_and_category(kind: str, plural: str, short: str) -> None:
    crd = CRDS[kind]
    assert crd["metadata"]["name"] == f"{plural}.goqueue.io"
    assert crd["spec"]["group"] == "goqueue.io"
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert names["plural"] == plural
    assert names["shortNames"] == [short]
    assert names["categories"] == ["goqueue"]  # `kubectl get goqueue` lists all three kinds
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]
    assert version_of(crd)["served"]
    assert version_of(crd)["storage"]


@pytest.mark.parametrize("kind", KINDS)
def test_status_subresource(kind: str) -> None:
    assert version_of(CRDS[kind])["subresources"]["status"] == {}


def test_cluster_has_a_scale_subresource_backed_by_status() -> None:
    version = version_of(CRDS["GoQueueCluster"])
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status = root_schema(CRDS["GoQueueCluster"])["properties"]["status"]["properties"]
    assert status["replicas"]["type"] == "integer"
    assert status["selector"]["type"] == "string"


@pytest.mark.parametrize(("kind", "columns"), [
    ("GoQueueCluster", ["Replicas", "Ready", "Version", "Phase", "Age"]),
    ("GoQueueTopic", ["Cluster", "Partitions", "Replicas", "Ready", "Age"]),
    ("GoQueueConsumerGroup", ["Cluster", "Topics", "Lag", "Paused", "Ready", "Age"]),
    ("GoQueueRebalance", ["Cluster", "Phase", "Moves", "Bytes", "Progress", "Age"]),
])
def test_printer_columns(kind: str, columns: list[str]) -> None:
    printed = version_of(CRDS[kind])["additionalPrinterColumns"]
    assert [c["name"] for c in printed if not c.get("priority")] == columns
    wide = {c["name"]: c["jsonPath"] for c in printed if c.get("priority") == 1}  # `kubectl get -o wide` only
    extra = {"Cert-Expiry": ".status.tls.notAfter"} if kind == "GoQueueCluster" else {}
    assert wide == {"Reason": '.status.conditions[?(@.type=="Ready")].reason',
                    "Message": '.status.conditions[?(@.type=="Ready")].message', **extra}
    by_name = {c["name"]: c for c in printed}
    assert by_name["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    if "Ready" in by_name and kind != "GoQueueCluster":
        assert by_name["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_description(kind: str) -> None:
    missing = [path for path, prop in walk_properties(root_schema(CRDS[kind]))
               if path != "metadata" and not prop.get("description")]
    assert not missing, f"{kind}: properties without a description: {missing}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_rule_has_a_human_message(kind: str) -> None:
    rules = list(walk_rules(root_schema(CRDS[kind])))
    assert rules, f"{kind} has no CEL rules"
    for path, rule in rules:
        assert rule.get("message"), f"{kind} {path}: rule {rule['rule']!r} has no message"
        assert "messageExpression" not in rule


def rules_at(kind: str, path: str) -> list[str]:
    return [r["rule"] for p, r in walk_rules(root_schema(CRDS[kind])) if p == path]


def test_partitions_never_decrease() -> None:
    assert "self >= oldSelf" in rules_at("GoQueueTopic", "spec.partitions")


def test_replication_factor_at_least_one_and_mutable() -> None:
    """A change reassigns the replicas (issue 16): no immutability rule any more; above the broker count the brokers
    refuse it with the reason (the CRD does not know the broker count)."""
    assert rules_at("GoQueueTopic", "spec.replicationFactor") == ["self >= 1"]


def test_rebalance_needs_a_goal_and_keeps_its_cluster() -> None:
    goals = rules_at("GoQueueRebalance", "spec.goals")
    assert any("size(self.replicationFactors) > 0" in r and "self.balance" in r for r in goals)
    assert any("self.addBrokers" in r and "exists" in r for r in goals)
    assert "self == oldSelf" in rules_at("GoQueueRebalance", "spec.clusterRef")
    spec = spec_schema("GoQueueRebalance")["properties"]
    assert spec["approved"]["default"] is False  # nothing moves until approved
    assert spec_schema("GoQueueRebalance")["required"] == ["clusterRef", "goals"]  # a rule on a default is refused


@pytest.mark.parametrize("kind", ["GoQueueTopic", "GoQueueConsumerGroup"])
def test_cluster_reference_immutable(kind: str) -> None:
    assert "self == oldSelf" in rules_at(kind, "spec.clusterRef")


def test_topic_name_immutable() -> None:
    (rule, *_) = [r for r in rules_at("GoQueueTopic", "spec") if "topicName" in r]
    assert "oldSelf.topicName" in rule


def test_storage_size_never_shrinks_by_quantity_comparison() -> None:
    (rule, *_) = [r for r in rules_at("GoQueueCluster", "spec.storage") if "compareTo" in r]
    assert "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0" in " ".join(rule.split())


def test_offset_reset_ids_are_list_map_keys() -> None:
    resets = spec_schema("GoQueueConsumerGroup")["properties"]["offsetResets"]
    assert resets["x-kubernetes-list-type"] == "map"
    assert resets["x-kubernetes-list-map-keys"] == ["id"]
    assert set(resets["items"]["required"]) == {"id", "topic", "to"}
    assert resets["items"]["properties"]["to"]["enum"] == ["earliest", "latest", "offset", "timestamp"]


@pytest.mark.parametrize(("kind", "path", "default"), [
    ("GoQueueCluster", "spec.replicas", 3),
    ("GoQueueCluster", "spec.storage.size", "10Gi"),
    ("GoQueueCluster", "spec.pod.terminationGracePeriodSeconds", 60),
    ("GoQueueCluster", "spec.disruptionBudget.maxUnavailable", 1),
    ("GoQueueCluster", "spec.scaling.autoDrain", False),
    ("GoQueueTopic", "spec.partitions", 1),
    ("GoQueueTopic", "spec.replicationFactor", 3),
    ("GoQueueTopic", "spec.deletionPolicy", "Retain"),
    ("GoQueueTopic", "spec.deleteIfEmpty", False),
    ("GoQueueConsumerGroup", "spec.paused", False),
    ("GoQueueConsumerGroup", "spec.mode", "shared"),
    ("GoQueueConsumerGroup", "spec.deletionPolicy", "Retain"),
])
def test_defaults(kind: str, path: str, default: object) -> None:
    props = dict(walk_properties(root_schema(CRDS[kind])))
    assert props[path]["default"] == default


def test_parent_objects_default_so_nested_defaults_apply() -> None:
    """Kubernetes defaults a nested field only when its parent object exists: every optional section has a default."""
    spec = spec_schema("GoQueueCluster")["properties"]
    for section in ("storage", "network", "pod", "disruptionBudget", "rollout", "scaling", "monitoring"):
        assert "default" in spec[section], section
    assert spec_schema("GoQueueTopic")["properties"]["config"]["default"] == {}


def test_strings_used_in_cel_have_a_max_length() -> None:
    """CEL cost estimation needs bounded strings; an unbounded one makes the API server reject the CRD."""
    props = dict(walk_properties(root_schema(CRDS["GoQueueCluster"])))
    assert props["spec.storage.size"]["maxLength"] <= 64
    assert props["spec.storage.storageClassName"]["maxLength"] <= 253


# The keys a structural schema node may carry (apiextensions.k8s.io/v1 JSONSchemaProps). Anything else is a YAML
# slip — e.g. an unquoted comma in a flow-mapping description splits it into a stray key, which the API server
# drops silently, leaving `kubectl explain` with half a sentence.
SCHEMA_KEYS = {
    "type", "format", "description", "default", "enum", "nullable", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "minProperties",
    "maxProperties", "multipleOf", "uniqueItems", "required", "properties", "items", "additionalProperties",
    "allOf", "anyOf", "oneOf", "not", "example", "title", "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
}


def _schema_nodes(schema: JSON, path: str) -> list[tuple[str, JSON]]:
    nodes = [(path, schema)]
    for name, prop in schema.get("properties", {}).items():
        nodes += _schema_nodes(prop, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            nodes += _schema_nodes(schema[key], f"{path}[]")
    return nodes


@pytest.mark.parametrize("kind", KINDS)
def test_every_schema_node_uses_only_openapi_keys(kind: str) -> None:
    stray = {path: sorted(set(node) - SCHEMA_KEYS) for path, node in _schema_nodes(root_schema(CRDS[kind]), kind)
             if set(node) - SCHEMA_KEYS}
    assert stray == {}


@pytest.mark.parametrize("kind", KINDS)
def test_every_number_in_a_spec_is_bounded_both_ways(kind: str) -> None:
    """Issue 13: every numeric field has a documented range, enforced by the API server as by the brokers."""
    unbounded = [path for path, prop in walk_properties(root_schema(CRDS[kind])) if path.startswith("spec")
                 and prop.get("type") in ("integer", "number") and ("minimum" not in prop or not upper_bound(prop))]
    assert not unbounded, unbounded


def upper_bound(prop: JSON) -> bool:
    """A maximum, or the int64 format: the API server reads a schema's maximum as a float64, so 2**63-1 cannot be
    written as one (it refuses the whole object: seen on kind); an int64 field is bounded by its format instead."""
    return "maximum" in prop or prop.get("format") == "int64"


def test_the_crds_partition_and_offset_ranges_are_the_brokers() -> None:
    props = dict(walk_properties(root_schema(CRDS["GoQueueTopic"])))
    assert (props["spec.partitions"]["minimum"], props["spec.partitions"]["maximum"]) == (
        limits.PARTITIONS.minimum, limits.PARTITIONS.maximum)
    resets = dict(walk_properties(root_schema(CRDS["GoQueueConsumerGroup"])))
    partition = next(p for path, p in resets.items() if path.endswith("offsetResets[].partition"))
    offset = next(p for path, p in resets.items() if path.endswith("offsetResets[].offset"))
    assert (partition["minimum"], partition["maximum"]) == (limits.PARTITION.minimum, limits.PARTITION.maximum)
    assert (offset["minimum"], offset["format"]) == (limits.OFFSET.minimum, "int64")
    assert limits.OFFSET.maximum == 2**63 - 1
