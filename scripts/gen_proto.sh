#!/usr/bin/env bash
# Regenerate the gRPC Python code from broker/goqueue/api/grpc/goqueue.proto.
#
# Usage: scripts/gen_proto.sh [OUTPUT_ROOT]   (default: broker, i.e. in place)
#
# The .proto lives beside the code that serves it; the generated modules go to goqueue/api/grpc/generated/, which
# ruff and mypy skip. protoc's virtual include path (-Ivirtual=disk) names the file goqueue/api/grpc/generated/
# goqueue.proto, so the generated stubs import `goqueue.api.grpc.generated.goqueue_pb2` without any rewriting.
# No --pyi_out: mypy always reads .pyi stubs (follow_imports does not apply to them), and they subclass protobuf's
# untyped classes, which `mypy --strict` rejects; pyproject treats the generated modules as Any instead.
# tests/integration/test_proto_generated.py runs this script into a temporary root and compares.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/broker}"
python="${PYTHON:-python}"

mkdir -p "$out/goqueue/api/grpc/generated"
"$python" -m grpc_tools.protoc \
  "-Igoqueue/api/grpc/generated=$repo/broker/goqueue/api/grpc" \
  --python_out="$out" --grpc_python_out="$out" \
  "$repo/broker/goqueue/api/grpc/goqueue.proto"
