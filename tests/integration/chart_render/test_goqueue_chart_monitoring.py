"""charts/goqueue's monitoring objects: the ServiceMonitor scrapes the metrics Service as job "goqueue" (what the
alerts select), the PrometheusRule is deploy/observability's rule file with its runbook links re-based, and each
dashboard is a ConfigMap for Grafana's sidecar holding the JSON file as is."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml
from helm_chart import CHART, REPO, Helm, Rendered

pytestmark = pytest.mark.integration  # helm renders and lints: a subprocess

RULES = REPO / "deploy" / "observability" / "prometheus" / "goqueue-alerts.yaml"
# The broker dashboards: the operator's is shipped by the operator chart only.
DASHBOARDS = sorted(p for p in (REPO / "deploy" / "observability" / "dashboards").glob("*.json")
                    if p.name != "goqueue-operator.json")
DEFAULT_BASE = "https://github.com/goqueue/goqueue/blob/main/docs/RUNBOOK.md"


@pytest.fixture(scope="module")
def monitored(helm: Helm) -> Rendered:
    return helm.template(values_files=[CHART / "ci" / "monitoring-values.yaml"])


def test_monitoring_objects_are_off_by_default(helm: Helm) -> None:
    kinds = {o["kind"] for o in helm.template().objects}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert [o["metadata"]["name"] for o in helm.template().of_kind("ConfigMap")] == ["goqueue-config"]


def test_the_service_monitor_scrapes_the_metrics_service_as_job_goqueue(monitored: Rendered) -> None:
    monitor = monitored.get("ServiceMonitor", "goqueue")
    service = monitored.get("Service", "goqueue-metrics")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    client = monitored.get("Service", "goqueue")  # the client Service must not be scraped twice
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= client["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["goqueue"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    # job = the Service's value of the jobLabel key: what GoQueueBrokerDown selects (up{job="goqueue"}).
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "goqueue"
    assert 'up{job="goqueue"}' in RULES.read_text()


def test_the_prometheus_rule_is_the_rule_file(monitored: Rendered) -> None:
    rule = monitored.get("PrometheusRule", "goqueue")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_runbook_links_follow_runbook_base_url(helm: Helm) -> None:
    base = "https://wiki.example.com/ops/goqueue-runbook"
    rendered = helm.template("--set", "prometheusRule.enabled=true", "--set", f"prometheusRule.runbookBaseUrl={base}/")
    expected = yaml.safe_load(RULES.read_text().replace(DEFAULT_BASE, base))["groups"]
    groups = rendered.get("PrometheusRule", "goqueue")["spec"]["groups"]
    assert groups == expected
    urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"]]
    assert urls
    assert all(u.startswith(f"{base}#alert-") for u in urls)


def test_each_dashboard_is_a_sidecar_config_map(monitored: Rendered) -> None:
    maps = {o["metadata"]["name"]: o for o in monitored.of_kind("ConfigMap")
            if o["metadata"]["name"] != "goqueue-config"}
    assert sorted(maps) == sorted(f"goqueue-{p.stem.removeprefix('goqueue-')}" for p in DASHBOARDS)
    for path in DASHBOARDS:
        config_map = maps[f"goqueue-{path.stem.removeprefix('goqueue-')}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["namespace"] == "monitoring"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "GoQueue"}
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())


def test_the_packaged_chart_carries_the_files_but_not_their_tooling(helm: Helm, tmp_path: Path) -> None:
    helm.run("package", str(CHART), "-d", str(tmp_path))
    (package,) = tmp_path.glob("goqueue-*.tgz")
    with tarfile.open(package) as archive:
        names = set(archive.getnames())
    assert "goqueue/files/observability/prometheus/goqueue-alerts.yaml" in names
    assert {f"goqueue/files/observability/dashboards/{p.name}" for p in DASHBOARDS} <= names
    assert not [n for n in names if n.endswith(".py") or "/tests/" in n]
