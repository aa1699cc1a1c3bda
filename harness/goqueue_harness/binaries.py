"""Where the pinned control-plane binaries live, building them when missing.

Why: tests and the demo need etcd, kube-apiserver, kube-controller-manager,
kubectl and helm at the versions in ``harness/versions.env``. They are built once
per machine by ``harness/build_binaries.sh`` into a cache under ``$HOME`` keyed by
those versions and the Go version. A missing or failed build is an error, never a
skip: a test suite that silently skips its control-plane tests proves nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent.parent
VERSIONS_FILE = HARNESS_DIR / "versions.env"
BUILD_SCRIPT = HARNESS_DIR / "build_binaries.sh"
COMPLETE_MARKER = ".complete"
BINARY_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")


class BinariesUnavailable(RuntimeError):
    """The control-plane binaries are missing and could not be built."""


@dataclass(frozen=True)
class Versions:
    """The pinned upstream versions from ``versions.env``."""

    kubernetes: str
    etcd: str
    helm: str

    @classmethod
    def load(cls, path: Path = VERSIONS_FILE) -> Versions:
        values: dict[str, str] = {}
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
        return cls(values["KUBERNETES_VERSION"], values["ETCD_VERSION"], values["HELM_VERSION"])


@dataclass(frozen=True)
class BinDir:
    """A complete directory of control-plane binaries."""

    path: Path

    def __getitem__(self, name: str) -> Path:
        assert name in BINARY_NAMES, name
        return self.path / name

    @property
    def kubectl(self) -> Path:
        return self.path / "kubectl"

    @property
    def helm(self) -> Path:
        return self.path / "helm"


def go_version() -> str:
    """``go env GOVERSION``, part of the cache key (a new Go rebuilds)."""
    go = shutil.which("go")
    if go is None:
        raise BinariesUnavailable("go is not installed; it is needed to build the control-plane binaries")
    return subprocess.run([go, "env", "GOVERSION"], check=True, capture_output=True, text=True).stdout.strip()


def cache_root() -> Path:
    override = os.environ.get("GOQUEUE_K8S_BIN_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "goqueue" / "k8s-bin"


def expected_bin_dir(versions: Versions | None = None) -> Path:
    """The cache directory ``build_binaries.sh`` uses for these versions."""
    v = versions or Versions.load()
    return cache_root() / f"{v.kubernetes}-{v.etcd}-{v.helm}-{go_version()}"


def _complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file() and all((path / n).is_file() for n in BINARY_NAMES)


def locate_binaries(*, build: bool = True) -> BinDir:
    """Return the bin dir, running the build script first when it is incomplete.

    ``GOQUEUE_K8S_BIN_DIR`` points at a prebuilt directory (must be complete).
    The build's progress streams to stderr; it takes 25-45 minutes cold.
    """
    override = os.environ.get("GOQUEUE_K8S_BIN_DIR")
    if override:
        path = Path(override)
        if not all((path / n).is_file() for n in BINARY_NAMES):
            raise BinariesUnavailable(f"GOQUEUE_K8S_BIN_DIR={path} lacks one of {BINARY_NAMES}")
        return BinDir(path)
    path = expected_bin_dir()
    if _complete(path):
        return BinDir(path)
    if not build:
        raise BinariesUnavailable(f"{path} is not built; run {BUILD_SCRIPT}")
    return build_binaries()


def build_binaries() -> BinDir:
    """Run ``build_binaries.sh`` (idempotent) and return the dir it prints last."""
    print(f"goqueue_harness: building control-plane binaries with {BUILD_SCRIPT}", file=sys.stderr)
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise BinariesUnavailable(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}; see its output above")
    path = Path(lines[-1])
    if not _complete(path):
        raise BinariesUnavailable(f"{BUILD_SCRIPT} reported {path}, which is incomplete")
    return BinDir(path)
