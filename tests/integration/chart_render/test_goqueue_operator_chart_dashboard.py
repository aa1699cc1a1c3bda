"""The operator chart ships the GoQueue Operator Grafana dashboard: with dashboards.enabled, one ConfigMap for Grafana's
sidecar holding deploy/observability/dashboards/goqueue-operator.json as is (files/dashboards links to it), and the
packaged chart carries the file itself, not the link."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml
from helm_chart import REPO, Helm, Rendered

pytestmark = pytest.mark.integration  # helm renders and packages: a subprocess

CHART = REPO / "charts" / "goqueue-operator"
DASHBOARD = REPO / "deploy" / "observability" / "dashboards" / "goqueue-operator.json"


def render(helm: Helm, *args: str) -> Rendered:
    proc = helm.run("template", "goqueue-operator", str(CHART), "-n", "goqueue-system", *args)
    return Rendered([doc for doc in yaml.safe_load_all(proc.stdout) if doc])


def test_no_dashboard_unless_asked(helm: Helm) -> None:
    assert render(helm).of_kind("ConfigMap") == []


def test_the_dashboard_is_a_sidecar_config_map(helm: Helm) -> None:
    rendered = render(helm, "--set", "dashboards.enabled=true", "--set", "dashboards.namespace=monitoring",
                      "--set", "dashboards.annotations.grafana_folder=GoQueue")
    config_map = rendered.get("ConfigMap", "goqueue-operator-dashboard")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["labels"]["app.kubernetes.io/instance"] == "goqueue-operator"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "GoQueue"}
    assert json.loads(config_map["data"]["goqueue-operator.json"]) == json.loads(DASHBOARD.read_text())


def test_unknown_dashboard_keys_are_refused(helm: Helm) -> None:
    proc = helm.run("template", "goqueue-operator", str(CHART), "--set", "dashboards.folder=GoQueue", check=False)
    assert proc.returncode != 0
    assert "folder" in proc.stderr


def test_the_packaged_chart_carries_the_dashboard(helm: Helm, tmp_path: Path) -> None:
    helm.run("package", str(CHART), "-d", str(tmp_path))
    (package,) = tmp_path.glob("goqueue-operator-*.tgz")
    with tarfile.open(package) as archive:
        member = archive.getmember("goqueue-operator/files/dashboards/goqueue-operator.json")
        assert member.isfile()
        packaged = archive.extractfile(member)
        assert packaged is not None
        assert json.loads(packaged.read()) == json.loads(DASHBOARD.read_text())
