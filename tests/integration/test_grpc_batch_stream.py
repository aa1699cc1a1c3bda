"""The batching producer's gRPC wire against a scripted in-process gRPC broker (`grpc_batch_stream_cases.py`), run
by pytest in a process of its own, where its in-process gRPC server is the only one. Put there when a later gRPC test
in the same xdist worker failed with "Event loop is closed" (a CI trial); the cause was grpc.aio handing a completion
to the closed loop its call was made on, which the integration tier's loops now drop (`grpc_loops.py`), but a
server's completions outliving their module's loop are better kept out of other tests' way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CASES = Path(__file__).with_name("grpc_batch_stream_cases.py")


def test_the_scripted_broker_cases_pass_in_a_process_of_their_own() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
                            capture_output=True, text=True, timeout=300, check=False, cwd=CASES.parents[2])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "8 passed" in result.stdout, result.stdout[-2000:]  # every case ran; none was skipped
