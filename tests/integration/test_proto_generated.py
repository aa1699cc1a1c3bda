"""The committed gRPC code is what scripts/gen_proto.sh makes from goqueue.proto today.

Only the stamps of the generator's own version are ignored (a newer grpcio-tools writes newer numbers into
otherwise identical code); any change of the .proto that was not regenerated fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs protoc (a subprocess)

REPO = Path(__file__).resolve().parents[2]
GENERATED = Path("goqueue/api/grpc/generated")
VERSION_STAMPS = [
    (re.compile(r"# Protobuf Python Version: .*"), "# Protobuf Python Version: <version>"),
    (re.compile(r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,)\s*\d+,\s*\d+,\s*\d+,"),
     r"\1 <version>,"),
    (re.compile(r"GRPC_GENERATED_VERSION = '[^']*'"), "GRPC_GENERATED_VERSION = '<version>'"),
]


def without_version_stamps(code: str) -> str:
    for pattern, replacement in VERSION_STAMPS:
        code = pattern.sub(replacement, code)
    return code


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "gen_proto.sh"), str(tmp_path)], check=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    fresh = sorted(p.name for p in (tmp_path / GENERATED).glob("*.py*"))
    committed_dir = REPO / "broker" / GENERATED
    committed = sorted(p.name for p in committed_dir.glob("*.py*") if p.name != "__init__.py")
    assert fresh == committed == ["goqueue_pb2.py", "goqueue_pb2_grpc.py"]
    for name in fresh:
        assert without_version_stamps((tmp_path / GENERATED / name).read_text()) == \
            without_version_stamps((committed_dir / name).read_text()), \
            f"{GENERATED / name} is stale: run scripts/gen_proto.sh and commit the result"
