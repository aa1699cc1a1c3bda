"""`helm template` / `helm lint` of charts/goqueue, parsed into objects the render tests select by kind and name.

Helm is the pinned build of the harness (`goqueue_harness.binaries`); it is built when missing and a failed build
fails the tests. Rendering needs no cluster: `lookup` returns nothing, so the Raft Secret is generated afresh.
NOTES.txt is rendered only by a real install: tests/integration/charts runs the commands it prints.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "goqueue"
RUNBOOK_INSTALL = ("--set", "replicaCount=3", "--set", "resources.requests.memory=2Gi",
                   "--set", "resources.limits.memory=4Gi", "--set", "persistence.size=100Gi",
                   "--set", "metrics.enabled=true")

Obj = dict[str, Any]


class RenderFailed(AssertionError):
    """helm refused the values; `message` is what it printed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Rendered:
    objects: list[Obj]

    def get(self, kind: str, name: str) -> Obj:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} found in {self.names()}"
        return found[0]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def names(self) -> list[str]:
        return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in self.objects)


def _quiet(stderr: str) -> str:
    """helm's notice that files/observability is a link (to deploy/observability) is expected, not a problem."""
    return "\n".join(line for line in stderr.splitlines() if "found symbolic link in path" not in line)


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise RenderFailed(_quiet(proc.stderr) or proc.stdout)
        return proc

    def template(self, *args: str, release: str = "goqueue", namespace: str = "goqueue",
                 values_files: Sequence[Path] = ()) -> Rendered:
        files = [arg for path in values_files for arg in ("-f", str(path))]
        proc = self.run("template", release, str(CHART), "-n", namespace, *files, *args)
        return Rendered([doc for doc in yaml.safe_load_all(proc.stdout) if doc])

    def refusal(self, *args: str) -> str:
        """The message helm prints when it refuses these values (fails the test if it renders)."""
        try:
            rendered = self.template(*args)
        except RenderFailed as exc:
            return exc.message
        raise AssertionError(f"helm rendered {args} without complaint: {rendered.names()}")

    def lint(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("lint", str(CHART), "--strict", *args, check=False)
