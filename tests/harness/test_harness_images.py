"""Image builds clean up after themselves: a rebuilt tag's previous image is removed once nothing uses it, so a
long-lived CI machine does not fill its disk with dangling images (it had: 229 of them, 30 GB)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from goqueue_harness.docker import ensure_docker
from goqueue_harness.images import build, image_exists, image_id

pytestmark = pytest.mark.integration

# An image with no layers: builds in about a second and needs no base image (no registry here).
DOCKERFILE = "FROM scratch\nARG VERSION\nLABEL goqueue.test.version=$VERSION\n"


@pytest.fixture
def tag() -> Iterator[str]:
    ensure_docker()
    name = f"goqueue-test/rebuild-{secrets.token_hex(3)}:t"
    yield name
    subprocess.run(["docker", "image", "rm", name], capture_output=True, check=False)


def test_a_rebuild_removes_the_image_its_tag_left_behind_unless_still_used(tag: str, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(DOCKERFILE)
    first = build(str(dockerfile), [tag], version="1", base="scratch")
    second = build(str(dockerfile), [tag], version="2", base="scratch")
    assert first.image_id != second.image_id
    assert not image_exists(first.image_id)  # dangling: gone
    assert image_id(tag) == second.image_id

    kept = f"{tag}-kept"
    subprocess.run(["docker", "tag", second.image_id, kept], check=True, capture_output=True)
    try:
        third = build(str(dockerfile), [tag], version="3", base="scratch")
        assert image_exists(second.image_id)  # still tagged elsewhere: kept
        assert image_id(tag) == third.image_id
    finally:
        subprocess.run(["docker", "image", "rm", kept], capture_output=True, check=False)
        subprocess.run(["docker", "image", "rm", second.image_id], capture_output=True, check=False)
