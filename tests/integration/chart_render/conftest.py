"""Render tests of charts/goqueue: `helm` is the harness's pinned build (built when missing; never skipped)."""

from __future__ import annotations

import pytest
from helm_chart import Helm

from goqueue_harness.binaries import BinDir


@pytest.fixture(scope="session")
def helm(k8s_binaries: BinDir) -> Helm:
    return Helm(k8s_binaries.helm)
