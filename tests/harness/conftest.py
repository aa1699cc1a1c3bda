"""API handles for the harness's own tests.

The fixtures (control plane, kubelet, namespaces) come from
``goqueue_harness.pytest_plugin``, registered for the whole suite; pod builders
live in ``harness_pods``.
"""

from __future__ import annotations

import pytest
from kubernetes import client as k8s


@pytest.fixture
def core(kube_api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube_api)


@pytest.fixture
def apps(kube_api: k8s.ApiClient) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(kube_api)
