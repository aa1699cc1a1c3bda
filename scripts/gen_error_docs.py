#!/usr/bin/env python3
"""Write docs/ERRORS.md from the error classes (the single source of truth); `--check` fails when it is stale."""

from __future__ import annotations

import sys
from pathlib import Path

from goqueue.errors import all_error_classes

TARGET = Path(__file__).resolve().parents[1] / "docs" / "ERRORS.md"


def render() -> str:
    lines = [
        "# GoQueue error codes",
        "",
        "Generated from `broker/goqueue/errors.py` by `scripts/gen_error_docs.py`; do not edit by hand.",
        "Every API answers errors as `{\"error\": {\"code\", \"message\", \"retriable\"}}` (gRPC: the status code,",
        "with `goqueue-error-code` in the trailing metadata); the CLIs exit with the code's exit status.",
        "",
        "| code | HTTP | gRPC | CLI exit | retriable | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for cls in all_error_classes():
        doc = " ".join((cls.__doc__ or "").split())
        lines.append(f"| `{cls.code}` | {cls.http_status} | {cls.grpc_code} | {cls.exit_code} | "
                     f"{'yes' if cls.retriable else 'no'} | {doc} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python scripts/gen_error_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
