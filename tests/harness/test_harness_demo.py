"""`make up`'s demo (goqueue_harness.demo): the sample it applies and the commands it prints. The whole flow
(helm install of the operator chart, a GoQueueCluster Ready) is tests/integration/charts/
test_goqueue_operator_chart_install.py; `make up` / `make down` themselves are tests/harness/test_harness_make_up.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from goqueue_harness.binaries import BinDir, Versions
from goqueue_harness.demo import SAMPLE, DemoCluster, next_steps, sample_manifests

pytestmark = pytest.mark.unit


def test_the_sample_cluster_binds_pod_ips_and_nothing_else_changes() -> None:
    original = [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d]
    docs = sample_manifests()
    assert [d["kind"] for d in docs] == [d["kind"] for d in original]
    (cluster,) = [d for d in docs if d["kind"] == "GoQueueCluster"]
    assert cluster["spec"]["network"]["bind"] == "PodIP"  # pods share the machine's ports here
    del cluster["spec"]["network"]
    assert docs == original


def test_next_steps_name_the_kubeconfig_the_pinned_kubectl_and_a_broker() -> None:
    bins = BinDir(Path("/cache/k8s-bin/v1.36.3"))
    demo = DemoCluster("goqueue", "goqueue", ["127.9.0.2", "127.9.0.3", "127.9.0.4"], ["my-topic"], ["my-group"])
    text = next_steps(demo, bins, Path("/state/kubeconfig"), Path("/state"))
    lines = [line.strip() for line in text.splitlines()]
    assert "export KUBECONFIG=/state/kubeconfig" in lines
    assert f"alias kubectl=/cache/k8s-bin/v1.36.3/kubectl   # {Versions.load().kubernetes}, the server's version" \
        in lines
    assert "kubectl get goqueue -n goqueue" in lines
    assert ("goqueue-cli --server http://127.9.0.2:8080 consume --topic my-topic --group my-group --from-beginning "
            "--max 1 --ack") in lines
