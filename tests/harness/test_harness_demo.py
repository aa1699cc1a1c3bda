"""`make up`'s demo (goqueue_harness.demo): the sample it applies and the commands it prints. The whole flow
(helm install of the operator chart, a GoQueueCluster Ready) is tests/integration/charts/
test_goqueue_operator_chart_install.py; `make up` / `make down` themselves are tests/harness/test_harness_make_up.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from goqueue_harness.binaries import BinDir, Versions
from goqueue_harness.demo import DEMO_RESOURCES, SAMPLE, DemoCluster, next_steps, next_steps_kind, sample_manifests

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("bind_pod_ip", [True, False], ids=["local", "kind"])
def test_the_sample_cluster_gets_small_requests_binds_pod_ips_locally_and_nothing_else_changes(
        bind_pod_ip: bool) -> None:
    original = [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d]
    docs = sample_manifests(bind_pod_ip=bind_pod_ip)
    assert [d["kind"] for d in docs] == [d["kind"] for d in original]
    (cluster,) = [d for d in docs if d["kind"] == "GoQueueCluster"]
    if bind_pod_ip:
        assert cluster["spec"]["network"]["bind"] == "PodIP"  # pods share the machine's ports on the local plane
        del cluster["spec"]["network"]
    else:
        assert "network" not in cluster["spec"]
    # Three brokers beside kind's control plane on one 2-core node: the CRD's default CPU requests do not fit.
    assert cluster["spec"]["resources"] == DEMO_RESOURCES
    del cluster["spec"]["resources"]
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
    assert ("export GOQUEUE_USER=goqueue-operator GOQUEUE_PASSWORD_FILE=/state/operator.password   # anonymous "
            "access is off") in lines
    assert ("goqueue-cli --server http://127.9.0.2:8080 consume --topic my-topic --group my-group --from-beginning "
            "--max 1 --ack") in lines


def test_next_steps_on_kind_are_the_runbooks_kubectl_commands() -> None:
    bins = BinDir(Path("/cache/k8s-bin/v1.36.3"))
    demo = DemoCluster("goqueue", "goqueue", ["10.244.0.9"], ["my-topic"], ["my-group"])
    lines = [line.strip() for line in next_steps_kind(demo, bins, Path("/state/kubeconfig"), "goqueue").splitlines()]
    assert "export KUBECONFIG=/state/kubeconfig" in lines
    assert "kubectl exec -n goqueue goqueue-0 -- goqueue-admin cluster status" in lines
    assert ("kubectl exec -n goqueue goqueue-0 -- goqueue-cli consume --topic my-topic --group my-group "
            "--from-beginning --max 1 --ack") in lines
    assert not [line for line in lines if "127." in line or "10.244." in line], "pod IPs are not reachable on kind"
