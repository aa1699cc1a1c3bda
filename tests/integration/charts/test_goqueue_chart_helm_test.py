"""`helm test` of a charts/goqueue release on the local control plane: the chart's test Pod (the broker image's
goqueue-cli, through the client Service) creates a topic, produces a record and consumes it back, and helm reports
it Succeeded."""

from __future__ import annotations

import pytest
from chart_release import RELEASE, Release

pytestmark = pytest.mark.integration


def test_helm_test_produces_and_consumes_a_record(release: Release) -> None:
    output = release.helm_run("test", RELEASE, "--timeout", "180s")  # fails the test unless the Pod Succeeded
    assert "Phase:          Succeeded" in output or "Phase: Succeeded" in output, output
    pod = release.core.read_namespaced_pod(f"{RELEASE}-test", release.namespace)
    assert pod.status.phase == "Succeeded"
    log = release.kubelet.logs(release.namespace, f"{RELEASE}-test", "produce-consume")
    assert "helm test: produced and consumed one record through http://goqueue:8080" in log, log
    # The test's topic is deleted on the way out: the release keeps no trace of the test.
    assert "helm-test-" not in release.cli("topic", "list")
