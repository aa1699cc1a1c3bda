"""A ProduceBatchStream's initial metadata, read by the client: the broker's request limit, or None when it is
missing or unusable (a limit of 0 would refuse every batch)."""

from __future__ import annotations

import pytest

from goqueue.api.grpc.stream_metadata import MAX_REQUEST_BYTES_KEY, max_request_bytes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("metadata", "limit"), [
    ([(MAX_REQUEST_BYTES_KEY, "67108864")], 67_108_864),
    ([("other", "1"), (MAX_REQUEST_BYTES_KEY, b"1024")], 1024),
    ([(MAX_REQUEST_BYTES_KEY, "0")], None),
    ([(MAX_REQUEST_BYTES_KEY, "-5")], None),
    ([(MAX_REQUEST_BYTES_KEY, "64MiB")], None),
    ([("other", "1")], None),
    (None, None),
])
def test_the_limit_is_read_or_left_unknown(metadata: list[tuple[str, str | bytes]] | None, limit: int | None) -> None:
    assert max_request_bytes(metadata) == limit
