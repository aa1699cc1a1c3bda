"""An invalid setting stops `goqueue-broker` before it touches the disk: exit code 2 and one line naming the setting
and the variable it came from. Integration, not unit: it starts the broker's own entry point as a process, as an
operator would (the settings model itself is tests/unit/test_config.py's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_broker_exits_2_and_writes_nothing_on_invalid_config(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"PATH": "/usr/bin:/bin", "GOQUEUE_STORAGE_DATADIR": str(data), "GOQUEUE_STORAGE_WALDIR": str(data / "wal"),
           "GOQUEUE_BROKER_PORT": "not-a-port"}
    result = subprocess.run([sys.executable, "-m", "goqueue.main"], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "broker.port" in lines[0]
    assert "GOQUEUE_BROKER_PORT" in lines[0]
    assert not data.exists()
