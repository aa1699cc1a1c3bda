"""Fixtures of the chart integration tests (see chart_release.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chart_release import Release, install_release
from kubernetes import client as k8s

from goqueue_harness.binaries import BinDir
from goqueue_harness.pytest_plugin import KubeletHandle


@pytest.fixture(scope="module")
def release(request: pytest.FixtureRequest, k8s_binaries: BinDir, kubeconfig: Path, kube_api: k8s.ApiClient,
            kubelet: KubeletHandle) -> Iterator[Release]:
    """One release per test module, named after the module (t-<module>-<hex> namespaces)."""
    prefix = request.module.__name__.removeprefix("test_").replace("_", "-")[:30]
    with install_release(prefix, k8s_binaries, kubeconfig, kube_api, kubelet) as installed:
        yield installed
