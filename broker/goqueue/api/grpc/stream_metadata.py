"""What a ProduceBatchStream's initial metadata tells the client, besides "this broker serves the stream".

`limits.maxRequestBytes`: the broker answers a larger batch with RECORD_TOO_LARGE, and grpc itself refuses a
message past that limit plus its framing by ending the whole stream, with no code, every batch on it unanswered;
an idempotent producer would then resend the oversized batch until its delivery timeout. Knowing the limit, the
client refuses such a batch itself, before writing it (`client/grpc_batch_stream.py`).
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_REQUEST_BYTES_KEY = "goqueue-max-request-bytes"


def max_request_bytes(metadata: Iterable[tuple[str, str | bytes]] | None) -> int | None:
    """The broker's limit from a stream's initial metadata; None when it sent none (an older broker) or a value
    that is no positive number, rather than refusing every batch."""
    for key, value in metadata or ():
        if key == MAX_REQUEST_BYTES_KEY:
            try:
                limit = int(value)
            except ValueError:
                return None
            return limit if limit > 0 else None
    return None
