"""The runbook's kubectl commands, run as written against the shared cluster on kind (real kubelet: exec, logs and
port-forward work there; the local backend's process-kubelet serves none of them: marked kind_only, its local variant
is not collected).

Read from docs/RUNBOOK.md itself, like tests/integration/test_runbook_commands.py (which runs the goqueue-cli /
goqueue-admin commands beside brokers on loopback, and whose preparation — the topic and group each command
expects — this scenario reuses): every line of a bash block that starts with `kubectl` and only
reads — `kubectl exec … -- goqueue-cli|goqueue-admin|df|iostat …`, `logs`, `port-forward` (with the line that uses
it), `get`, `describe` — is run by bash with this cluster's kubeconfig. Two adaptations, both spelled out here: the
namespace `-n goqueue` becomes the shared cluster's (its GoQueueCluster is named `goqueue`, as in the runbook), and
placeholders (`<group-name>`, `goqueue-$i` in a loop, `<n>`, …) get real values.

Not run here, with why: commands that change the cluster (`scale`, `delete`, `cordon`, `patch`, `apply`, `create`,
`drain`, `rollout`) — other scenarios do those through the operator (broker kill, rolling upgrade, storage
expansion) and running them as written would break the shared cluster; `kubectl top` (no metrics-server); the
Grafana port-forward (no monitoring stack in this cluster).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_runbook_commands import GROUP, PLACEHOLDERS, TOPIC, runbook_path
from test_runbook_commands import _prepare as prepare
from workloads import GoQueueCluster

from goqueue.client.http import GoQueueClient
from goqueue.errors import GoQueueError
from goqueue.models import GroupSpec
from goqueue_harness.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kind_only]
# The load tool's runbook lines run 60 s and then give the consumers up to --drain-timeout (60 s) to catch up: on a
# loaded CI machine the whole line needs more than the 120 s other commands get (seen: timed out at 120 s).
LOAD_TOOL_TIMEOUT_S = 240

REPO = Path(__file__).resolve().parents[1]
READ_ONLY = re.compile(r"^kubectl (exec|logs|port-forward|get|describe)\b")
NOT_RUN = re.compile(r"^kubectl (top|scale|delete|cordon|uncordon|drain|patch|apply|create|rollout|edit|label)\b"
                     r"|svc/grafana")
EXEC_TOOLS = re.compile(r" -- (goqueue-cli|goqueue-admin|df|iostat)\b")
MORE_PLACEHOLDERS = {"goqueue-$i": "goqueue-0", "goqueue-<n>": "goqueue-0", "<node-name>": "{node}",
                     "<storage-class>": "goqueue-expandable"}


@dataclass(frozen=True)
class Command:
    line: int
    text: str  # one command, or a port-forward with the command that uses it


def runbook_kubectl_commands(text: str) -> tuple[list[Command], list[str]]:
    """(commands to run, commands left out) from the runbook's bash blocks."""
    run: list[Command] = []
    left_out: list[str] = []
    for block in re.finditer(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        start = text.count("\n", 0, block.start()) + 2
        lines = [" ".join(raw.split()) for raw in block[1].replace("\\\n", " ").splitlines()]
        pending_forward: str | None = None
        for offset, line in enumerate(lines):
            if not line or line.startswith("#"):
                continue
            if pending_forward is not None:  # the line that uses the port-forward above it
                run.append(Command(start + offset, f"{pending_forward}\n{line}"))
                pending_forward = None
                continue
            if not line.startswith("kubectl"):
                continue
            if NOT_RUN.search(line):
                left_out.append(line)
            elif READ_ONLY.match(line) and (not line.startswith("kubectl exec") or EXEC_TOOLS.search(line)):
                if line.startswith("kubectl port-forward") and line.endswith("&"):
                    pending_forward = line
                else:
                    run.append(Command(start + offset, line))
            else:
                left_out.append(line)
    return run, left_out


COMMANDS, LEFT_OUT = runbook_kubectl_commands(runbook_path().read_text())


def test_the_runbook_names_the_kubectl_commands_this_scenario_must_cover() -> None:
    texts = [c.text for c in COMMANDS]
    for expected in ("kubectl exec -n goqueue goqueue-0 -- goqueue-admin cluster status",
                     "kubectl exec -n goqueue goqueue-0 -- goqueue-cli topic list",
                     "kubectl logs -n goqueue goqueue-0 --previous",
                     "kubectl port-forward -n goqueue svc/goqueue-metrics 9000:9000 &",
                     "kubectl exec -n goqueue goqueue-0 -- df -h /data",
                     "kubectl get pods -n goqueue -l app.kubernetes.io/name=goqueue"):
        assert any(expected in t for t in texts), f"{expected!r} is not run: {texts}"
    assert all("kubectl scale" not in t for t in texts)


def as_written(command: str, namespace: str, node: str) -> str:
    """The command with the namespace and placeholders filled; nothing else changed."""
    text = re.sub(r"(-n|--namespace)(=| )goqueue\b", rf"\1\g<2>{namespace}", command)
    for placeholder, value in {**PLACEHOLDERS, **MORE_PLACEHOLDERS}.items():
        text = text.replace(placeholder, value.format(node=node))
    assert not re.search(r"<[a-z-]+>", text), f"unfilled placeholder in {text!r}"
    return text


def declare_runbook_user(cluster: GoQueueCluster) -> None:
    """Apply the runbook's own GoQueueUser heredoc (its `kubectl apply` is one of the commands not run here, as it
    changes the cluster) and wait until the operator made it Ready, as a reader of the runbook would have."""
    text = runbook_path().read_text()
    (manifest,) = [m["body"] for m in RUNBOOK_HEREDOC.finditer(text) if "kind: GoQueueUser" in m["body"]]
    cluster.kubectl("apply", "-f", "-", input_text=manifest)
    name = re.search(r"metadata: \{name: ([a-z0-9-]+)\}", manifest)
    assert name is not None, manifest
    cluster.wait_resource("goqueueuser", name[1])


def replication_log(cluster: GoQueueCluster, lines: int = 15) -> str:
    """Each broker's latest replication events, warnings and errors: what a failed health check needs explained."""
    tails = []
    for broker in range(3):
        try:
            log = cluster.kubectl("logs", f"goqueue-{broker}", "--tail=2000")
        except Exception as exc:  # a diagnostic: its own failure is reported, not raised
            log = f"(no log: {exc})"
        events = [line[:600] for line in log.splitlines()
                  if re.search(r'"level": "(warning|error)"|"event": "(replica|partition|broker\.reconcile)', line)]
        tails.append(f"goqueue-{broker}, last replication events:\n" + "\n".join(events[-lines:]))
    return "\n".join(tails)


HEALTHY_TIMEOUT_S = 180.0
RUNBOOK_HEREDOC = re.compile(r"<<'YAML'\n(?P<body>.*?)\nYAML\n", re.S)


def at_rest(client: GoQueueClient) -> bool:
    """Healthy, and every partition led by its preferred replica: no leadership move still to come. A broker back
    from a restart takes its partitions back `replication.preferredLeaderDelay` (10 s) after it is in sync, and
    each move has the followers start fetching from the new leader."""
    try:
        if not client.cluster_status().healthy:
            return False
        return all(p.replicas and p.leader == p.replicas[0] and sorted(p.isr) == sorted(p.replicas)
                   for topic in client.list_topics(internal=True)
                   for p in client.describe_topic(topic.name).partition_details)
    except GoQueueError:  # a broker still settling may refuse a describe: not at rest yet, ask again
        return False


@pytest.fixture(scope="module")
def backend_kind_only(shared_cluster: GoQueueCluster) -> GoQueueCluster:
    """The shared cluster once an earlier scenario's restarts have settled: Ready, every replica back in sync, and
    every leadership back on its preferred broker. The runbook's health checks exit non-zero while a partition is
    under-replicated, and an operator reaches for them on a cluster at rest (CI ran them seconds after a rolled
    broker came back, and again just before leadership moved back to it: its followers then fell out of sync for a
    while; the failure message shows the brokers' replication events should that recur)."""
    assert shared_cluster.backend.name == "kind", "kind_only scenarios are deselected on other backends"
    shared_cluster.wait_ready()
    with shared_cluster.client() as client:
        wait_until(lambda: at_rest(client), HEALTHY_TIMEOUT_S,
                   message="the shared cluster at rest (healthy, every partition on its preferred leader)")
    return shared_cluster


@pytest.mark.parametrize("command", COMMANDS, ids=[f"line{c.line}" for c in COMMANDS])
def test_runbook_kubectl_command_as_written(backend_kind_only: GoQueueCluster, tmp_path: Path,
                                            command: Command) -> None:
    cluster = backend_kind_only
    kubectl = cluster.backend.kubectl
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").strip()
    text = as_written(command.text, cluster.namespace, node)
    with cluster.client() as client:
        # The state an operator would be in (the integration runbook test's own preparation): the topic exists
        # with records and a group that consumed some (or, for `topic create`, does not exist yet).
        prepare(client, text)
        if "reset-offset" in text:  # the procedure stops the group's consumers first
            client.delete_group(GROUP, force=True)
            client.declare_group(GROUP, GroupSpec(topics=[TOPIC]))
        if re.search(r"\bgqu\b", text):  # the GoQueueUser the runbook's `kubectl apply` just above declares
            declare_runbook_user(cluster)
        if "restore metadata" in text:  # the file the backup step of the same procedure wrote
            (tmp_path / "metadata-backup.json").write_text(client.backup_metadata().model_dump_json(by_alias=True))
    script = text
    if "\n" in text:  # a port-forward in the background, then the line that uses it
        forward, use = text.split("\n", 1)
        port = re.search(r" (\d+):\d+", forward)
        assert port, forward
        script = (f"{forward}\nforward=$!\ntrap 'kill $forward' EXIT\n"
                  f"for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/{port[1]}) 2>/dev/null && break; sleep 0.2; "
                  f"done\n{use}")
    if re.search(r"^kubectl (logs|get)\b.* (-f|-w)$", text):
        script = f"timeout 5 {text}; test $? -eq 124"  # follows or watches forever: five seconds of it
    (tmp_path / "deploy").symlink_to(REPO / "deploy")  # the runbook's paths are relative to a checkout
    bin_dir = str(Path(kubectl.binary).parent)
    env = {**os.environ, "KUBECONFIG": str(kubectl.kubeconfig), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=LOAD_TOOL_TIMEOUT_S if "goqueue_load.py" in text else 120,
                            check=False)
    output = result.stdout + result.stderr
    if "--previous" in text and result.returncode != 0:
        # Only a restarted container has a previous log; the kubelet answering that is the command working.
        assert "previous terminated container" in output, output
        return
    assert result.returncode == 0, (f"line {command.line}: {text}\nstdout: {result.stdout}\nstderr: "
                                    f"{result.stderr}\n{replication_log(cluster)}")
    assert "Traceback" not in output
    if "consumer pause --all" in text:
        with cluster.client() as client:
            assert client.describe_group(GROUP).state.value == "Paused"
            client.resume()
