"""The alert rules of deploy/observability: every alert unit-tested (promtool runs those rule tests, and checks the
rules, in tests/integration/test_observability_promtool.py), at the runbook's thresholds, and linked to a section of
docs/RUNBOOK.md that exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "observability" / "prometheus" / "goqueue-alerts.yaml"
RULE_TESTS = REPO / "deploy" / "observability" / "prometheus" / "tests" / "goqueue-alerts.test.yaml"
RUNBOOK = REPO / "docs" / "RUNBOOK.md"
RUNBOOK_URL = "https://github.com/goqueue/goqueue/blob/main/docs/RUNBOOK.md#"
# The runbook's alerts (issue 7): each must exist, with these severities.
REQUIRED = {
    "GoQueueHighConsumerLag": {"warning", "critical"},
    "GoQueueHighDiskUsage": {"warning", "critical"},
    "GoQueueDiskFullSoon": {"critical"},
    "GoQueueBrokerDown": {"critical"},
    "GoQueueHighMessageLatency": {"warning", "critical"},
    "GoQueueMessagesStagnant": {"critical"},
    "GoQueueConsumersStalled": {"warning"},
    "GoQueueUnderReplicatedPartitions": {"warning"},
    "GoQueueOfflinePartitions": {"critical"},
    "GoQueueRolloutBlocked": {"warning"},
    "GoQueueDeadLetterGrowth": {"warning"},
    "GoQueueInflightNearCapacity": {"warning", "critical"},
}


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_runbooks_alerts_exist_with_their_severities() -> None:
    found: dict[str, set[str]] = {}
    for rule in alerts():
        found.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert found == REQUIRED


def test_every_alert_and_severity_is_shown_firing_by_a_rule_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {(case["alertname"], alert["exp_labels"]["severity"])
             for test in tests for case in test.get("alert_rule_test", []) for alert in case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if not case["exp_alerts"]}
    expected = {(name, severity) for name, severities in REQUIRED.items() for severity in severities}
    assert fired == expected
    assert quiet == set(REQUIRED), "each alert is also shown not firing (before its `for`, or below its threshold)"


@pytest.mark.parametrize(("alert", "severity", "threshold"), [
    ("GoQueueHighConsumerLag", "warning", "> 5000"),
    ("GoQueueHighConsumerLag", "critical", "> 10000"),
    ("GoQueueHighDiskUsage", "warning", "> 80"),
    ("GoQueueHighDiskUsage", "critical", "> 90"),
    ("GoQueueDiskFullSoon", "critical", "predict_linear(goqueue_disk_free_bytes"),
    ("GoQueueHighMessageLatency", "warning", "goqueue_message_latency_p99) > 0.05"),  # seconds, not ms
    ("GoQueueHighMessageLatency", "critical", "goqueue_message_latency_p99) > 0.1"),
    ("GoQueueMessagesStagnant", "critical", "goqueue_messages_total"),
    ("GoQueueUnderReplicatedPartitions", "warning", "goqueue_under_replicated_partitions) > 0"),
    ("GoQueueOfflinePartitions", "critical", "goqueue_offline_partitions) > 0"),
    ("GoQueueRolloutBlocked", "warning", "goqueue_operator_rollouts_blocked) > 0"),
    ("GoQueueDeadLetterGrowth", "warning", "goqueue_dead_lettered_messages_total"),
    ("GoQueueInflightNearCapacity", "warning", "> 0.8"),
    ("GoQueueInflightNearCapacity", "critical", ">= 1"),
])
def test_thresholds_are_the_runbooks(alert: str, severity: str, threshold: str) -> None:
    (rule,) = [r for r in alerts() if r["alert"] == alert and r["labels"]["severity"] == severity]
    assert threshold in " ".join(rule["expr"].split())


def test_every_alert_links_to_its_runbook_section() -> None:
    prose = re.sub(r"```.*?```", "", RUNBOOK.read_text(), flags=re.DOTALL)  # a `# comment` in a block is no heading
    headings = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", prose, flags=re.MULTILINE)}
    for rule in alerts():
        annotations = rule["annotations"]
        assert annotations["summary"]
        assert annotations["description"]
        url = annotations["runbook_url"]
        assert url.startswith(RUNBOOK_URL), url
        anchor = url.removeprefix(RUNBOOK_URL)
        assert anchor == f"alert-{rule['alert'].lower()}", url
        assert anchor in headings, f"docs/RUNBOOK.md has no section '### Alert: {rule['alert']}'"
