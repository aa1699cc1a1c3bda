"""The data volume's identity file: created once, stable, and a damaged one is kept aside and replaced."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from goqueue.storage.identity import IDENTITY_FILE, load_or_create

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


def test_a_volume_keeps_its_identity(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    assert load_or_create(tmp_path) == first
    assert json.loads((tmp_path / IDENTITY_FILE).read_text()) == {"directoryId": first}
    other = tmp_path / "other"
    other.mkdir()
    assert load_or_create(other) != first, "every new volume gets its own id"


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'{"directoryId": ""}', b"[]", b'{"x": 1}'])
def test_an_unreadable_identity_is_set_aside_and_replaced(tmp_path: Path, content: bytes) -> None:
    (tmp_path / IDENTITY_FILE).write_bytes(content)

    fresh = load_or_create(tmp_path)

    [aside] = tmp_path.glob(f"{IDENTITY_FILE}.corrupt-*")
    assert aside.read_bytes() == content, "the damaged file is kept for inspection, not deleted"
    assert fresh
    assert load_or_create(tmp_path) == fresh, "the replacement identity is kept"
