"""GoQueue's two images, built with `docker build` the way a user builds them, on a machine with or without a registry.

Why here: `make up` on kind, the e2e kind backend and the image test all need the broker and operator images built
from this checkout. The Dockerfiles' `BASE_IMAGE` defaults to the public `python:3.11-slim-bookworm`; where it
cannot be pulled (no registry: these CI machines) the base is made from Debian packages by
`harness/kind/base_images.sh python` (docs/KIND.md). `GOQUEUE_BASE_IMAGE` overrides both.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KIND_DIR = Path(__file__).resolve().parents[1] / "kind"
PUBLIC_BASE = "python:3.11-slim-bookworm"
BUILD_TIMEOUT_S = 1800
# On the pods that run a locally built image: its id. A rebuilt image keeps its tag, so on a reused cluster only a
# changed pod template (this annotation) makes Kubernetes replace pods still running the previous build.
IMAGE_ID_ANNOTATION = "goqueue.io/image-id"


class ImageBuildError(RuntimeError):
    """A docker build (or the base it needs) failed; the message ends with the tool's last lines."""


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float
    size_bytes: int
    image_id: str  # `sha256:…`: what a tag meant when it was built (a reused cluster must roll pods when it changes)

    @property
    def short_id(self) -> str:
        return self.image_id.removeprefix("sha256:")[:12]


def _run(argv: list[str], *, timeout_s: float = BUILD_TIMEOUT_S) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=REPO)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ImageBuildError(f"{' '.join(argv[:3])} … failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False).returncode == 0


def can_pull(ref: str) -> bool:
    """True when `ref` is here or `docker pull` gets it (fails at once where no registry answers)."""
    if image_exists(ref):
        return True
    return subprocess.run(["docker", "pull", "-q", ref], capture_output=True, timeout=600,
                          check=False).returncode == 0


def python_base() -> str:
    """The BASE_IMAGE to build with: GOQUEUE_BASE_IMAGE, the public image when it can be pulled, or a local one."""
    override = os.environ.get("GOQUEUE_BASE_IMAGE")
    if override:
        return override
    if can_pull(PUBLIC_BASE):
        return PUBLIC_BASE
    return _run(["bash", str(KIND_DIR / "base_images.sh"), "python"]).strip().splitlines()[-1]


def build(dockerfile: str, tags: list[str], *, version: str, base: str | None = None, no_cache: bool = False) -> Built:
    """`docker build -f <dockerfile>` of this checkout, tagged with every tag; returns the first tag and figures.

    `no_cache` rebuilds every layer (a cold build's time); the base image itself is not rebuilt."""
    started = time.monotonic()
    argv = ["docker", "build", "-q", "-f", dockerfile, "--build-arg", f"BASE_IMAGE={base or python_base()}",
            "--build-arg", f"VERSION={version}"]
    if no_cache:
        argv.append("--no-cache")
    for tag in tags:
        argv += ["-t", tag]
    replaced = {found for found in map(image_id, tags) if found is not None}
    _run([*argv, "."])
    built_id, size = _run(["docker", "image", "inspect", "-f", "{{.Id}} {{.Size}}", tags[0]]).split()
    for old in replaced - {built_id}:
        remove_if_untagged(old)
    return Built(tags[0], time.monotonic() - started, int(size), built_id)


def image_id(ref: str) -> str | None:
    proc = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def remove_if_untagged(old_id: str) -> None:
    """A rebuild moves the tags to the new image and leaves the old one dangling: on a long-lived CI machine they
    piled up (229 images, 30 GB: its disk was 93 % full). Removed unless something still uses it: another tag, or a
    container (docker refuses both without --force, which this never passes)."""
    if not _tags_of(old_id):
        subprocess.run(["docker", "image", "rm", old_id], capture_output=True, check=False)


def _tags_of(ref: str) -> list[str]:
    proc = subprocess.run(["docker", "image", "inspect", "-f", "{{join .RepoTags \" \"}}", ref], capture_output=True,
                          text=True, check=False)
    return proc.stdout.split() if proc.returncode == 0 else []


def build_broker_and_operator(broker_tags: list[str], operator_tags: list[str], *, version: str,
                              no_cache: bool = False) -> list[Built]:
    base = python_base()
    return [build("Dockerfile.broker", broker_tags, version=version, base=base, no_cache=no_cache),
            build("Dockerfile.operator", operator_tags, version=version, base=base, no_cache=no_cache)]
