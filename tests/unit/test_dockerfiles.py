"""Dockerfile.broker and Dockerfile.operator: what the charts and the runbook rely on, read from the Dockerfiles by
a small parser (no Docker, no hadolint here: tests/integration/test_dockerfile_lint.py runs hadolint): a slim final
stage with no compilers, installed from local wheels only, running as the non-root user the charts'
securityContext names, with goqueue-cli and goqueue-admin in the broker image and the broker's ports and readiness
endpoint those of charts/goqueue."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {"broker": REPO / "Dockerfile.broker", "operator": REPO / "Dockerfile.operator"}
CHART_VALUES = yaml.safe_load((REPO / "charts" / "goqueue" / "values.yaml").read_text())
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|cmake|rustc|cargo|[a-z0-9.+-]+-dev)\b")
# Debugging tools the runbook runs inside a broker pod (ps, ss, iostat, netstat, df); nothing else may be installed.
BROKER_APT_PACKAGES = {"procps", "iproute2", "sysstat", "net-tools"}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for op, args in self.instructions if op == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"no {instruction} in the stage FROM {self.base}"
        return found[-1]


def parse(path: Path) -> list[Stage]:
    """Instructions per stage, with line continuations joined and comments (incl. parser directives) dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    global_args: dict[str, str] = {}  # ARGs before the first FROM, with their defaults (the users' build)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, args = line.partition(" ")
        op, args = op.upper(), " ".join(args.split())
        if op == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = default
            continue
        if op == "FROM":
            args = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], args)
            match = re.fullmatch(r"(\S+)(?: AS (\S+))?", args, flags=re.IGNORECASE)
            assert match, f"{path.name}: cannot read FROM {args}"
            stages.append(Stage(match[1], match[2]))
        else:
            assert stages, f"{path.name}: {op} before FROM"
            stages[-1].instructions.append((op, args))
    return stages


def final_stage(name: str) -> Stage:
    return parse(DOCKERFILES[name])[-1]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_multi_stage_with_a_slim_final_stage_of_the_projects_python(name: str) -> None:
    stages = parse(DOCKERFILES[name])
    assert len(stages) >= 2, "wheels are built in their own stage"
    final = stages[-1]
    assert final.name is None or final.name not in {"build", "builder"}
    assert re.fullmatch(r"python:(\d+\.\d+)-slim-\w+", final.base), f"final base {final.base} is not a slim Python"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.search(r"(\d+\.\d+)", requires)
    assert minimum
    assert final.base.startswith(f"python:{minimum[1]}-"), f"{final.base} is not the Python of {requires}"
    assert all(s.base == final.base for s in stages), "build and run on the same Python (wheels must match it)"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_final_stage_has_no_compilers_and_installs_local_wheels_only(name: str) -> None:
    final = final_stage(name)
    for run in final.all("RUN"):
        installs = re.findall(r"apt-get install ([^&;|]*)", run)
        for packages in installs:
            names = {p for p in shlex.split(packages) if not p.startswith("-")}
            assert not {p for p in names if COMPILERS.fullmatch(p)}, f"compilers in the final stage: {run}"
            assert names <= BROKER_APT_PACKAGES, f"unexpected packages in the final stage: {names}"
        if "pip install" in run:
            assert "--no-index" in run, f"the final stage must not download (or build) anything: {run}"
            assert "--no-cache-dir" in run
        assert "pip wheel" not in run
        assert not re.search(r"\bapk add|\byum install|\bdnf install", run)
    copies = final.all("COPY")
    assert copies == ["--from=build /wheels /wheels"], "only the built wheels come from the build stage"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_apt_leaves_nothing_behind_in_the_final_stage(name: str) -> None:
    # The public base's apt config drops downloaded packages by itself; a base made from Debian packages does not,
    # and they would stay in the layer (80 MB in the broker image). Same RUN: a later one cannot shrink the layer.
    for run in final_stage(name).all("RUN"):
        if "apt-get install" in run:
            assert "apt-get clean" in run, f"apt's downloaded packages stay in the image: {run}"
            assert "rm -rf /var/lib/apt/lists/*" in run, f"apt's package lists stay in the image: {run}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_runs_as_the_non_root_user_the_charts_name(name: str) -> None:
    final = final_stage(name)
    user = final.last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0
    # Nothing runs as root after the user is set, and the user is the one the charts ask for.
    ops = [op for op, _ in final.instructions]
    assert "RUN" not in ops[ops.index("USER"):]
    assert int(uid) == CHART_VALUES["podSecurityContext"]["runAsUser"]
    assert int(gid) == CHART_VALUES["podSecurityContext"]["runAsGroup"]
    assert any(f"--uid {uid}" in run for run in final.all("RUN")), "the user exists in /etc/passwd"


def test_the_broker_image_runs_the_broker_and_carries_the_clis() -> None:
    final = final_stage("broker")
    assert final.last("ENTRYPOINT") == '["goqueue-broker"]'
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    # The one `goqueue` wheel installed in the final stage brings every console script of the project.
    assert {"goqueue-broker", "goqueue-cli", "goqueue-admin"} <= set(scripts)
    assert any("/wheels/goqueue-" in run for run in final.all("RUN"))


def test_the_broker_image_matches_the_charts_ports_and_probes() -> None:
    final = final_stage("broker")
    broker = CHART_VALUES["config"]["broker"]
    assert set(final.last("EXPOSE").split()) == {
        str(broker[port]) for port in ("port", "grpcPort", "raftPort", "internalPort")}
    healthcheck = final.last("HEALTHCHECK")
    assert f"127.0.0.1:{broker['port']}/readyz" in healthcheck  # the charts' readiness probe
    # The environment wins over the settings file: an image default would override the chart's goqueue.yaml.
    assert not [env for env in final.all("ENV") if "GOQUEUE_" in env]
    assert final.last("VOLUME") == f'["{CHART_VALUES["config"]["storage"]["dataDir"]}"]'


def test_the_operator_image_runs_the_operator() -> None:
    final = final_stage("operator")
    assert final.last("ENTRYPOINT") == '["goqueue-operator"]'
    assert final.last("EXPOSE") == "8081"
    assert not [env for env in final.all("ENV") if "GOQUEUE_" in env]
