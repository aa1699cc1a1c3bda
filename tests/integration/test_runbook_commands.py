"""Every runbook command that names goqueue-cli or goqueue-admin, run as written against a real 3-broker cluster.

The commands are read from the runbook itself (so a new or edited command is tested without touching this file):
bash blocks, backslash continuations joined, the `kubectl exec -n goqueue goqueue-N --` prefix stripped (here the
CLI runs beside the broker, which is what `kubectl exec` into the pod does), and placeholders such as
`<group-name>` filled with real names. Pipes and redirections run through bash, as on the pod. Three brokers,
because the runbook's cluster has three (`topic create --replication-factor 3` needs them); the commands talk to
broker 0, as `kubectl exec … goqueue-0` does.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_process import LocalCluster, wait_until

from goqueue.client.http import GoQueueClient
from goqueue.errors import TopicNotFound
from goqueue.models import ConsumeRequest, GroupSpec, MetadataBackup, ProduceRecord, TopicCreate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RUNBOOK_CANDIDATES = (REPO / "docs" / "RUNBOOK.md", REPO.parent / "shared" / "seed" / "RUNBOOK.md")
KUBECTL_EXEC = re.compile(r"^.*?kubectl exec\b.*? --\s+")
PLACEHOLDERS = {"<group-name>": "my-group", "<group>": "my-group", "<topic>": "my-topic"}
TOPIC, GROUP = "my-topic", "my-group"


def runbook_path() -> Path:
    for path in RUNBOOK_CANDIDATES:
        if path.exists():
            return path
    raise FileNotFoundError(f"the runbook is not at any of {[str(p) for p in RUNBOOK_CANDIDATES]}")


def runbook_commands(text: str) -> list[str]:
    """Each goqueue-cli / goqueue-admin command of the runbook's bash blocks, ready to run."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for raw in block.replace("\\\n", " ").splitlines():
            line = " ".join(raw.split())
            if line.startswith("#") or not re.search(r"\bgoqueue-(cli|admin)\b", line):
                continue
            command = KUBECTL_EXEC.sub("", line)
            for placeholder, value in PLACEHOLDERS.items():
                command = command.replace(placeholder, value)
            assert not re.search(r"<[a-z-]+>", command), f"unfilled placeholder in {command!r}"
            commands.append(command)
    return commands


COMMANDS = runbook_commands(runbook_path().read_text())


def test_the_runbook_names_the_commands_this_suite_must_cover() -> None:
    names = {" ".join(c.split()[:3]) for c in COMMANDS}
    for expected in ("goqueue-admin restore metadata",
                     "goqueue-admin cluster status", "goqueue-admin consumer pause", "goqueue-admin health",
                     "goqueue-cli topic list", "goqueue-cli group describe", "goqueue-cli group reset-offset",
                     "goqueue-admin inflight list", "goqueue-admin backup metadata", "goqueue-admin storage stats",
                     "goqueue-admin replication status", "goqueue-admin cluster members"):
        assert expected in names, f"{expected!r} is not in the runbook any more: {sorted(names)}"


@pytest.fixture(scope="module")
def goqueue_0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of broker 0 of a running three-broker cluster, once every broker is up and the cluster healthy, as an
    operator reaching for the runbook finds it (CI once ran `cluster status` while broker 2 was not yet seen up)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("runbook-cluster")).start()
    try:
        with GoQueueClient(cluster.url(0)) as client:
            wait_until(lambda: client.cluster_status().healthy, 60, "the runbook's cluster healthy")
        yield cluster.url(0)
    finally:
        codes = cluster.stop()
        assert codes == [0, 0, 0], codes


def _prepare(client: GoQueueClient, command: str) -> None:
    """The state an operator would have when running the command: the topic exists (or not, for create) and
    the group has consumed from it."""
    exists = True
    try:
        client.describe_topic(TOPIC)
    except TopicNotFound:
        exists = False
    if "topic create" in command:
        if exists:
            client.delete_topic(TOPIC)
        return
    if not exists:
        client.create_topic(TopicCreate(name=TOPIC, partitions=8, replication_factor=3))
        client.produce(TOPIC, [ProduceRecord(key=str(n), value=f"m{n}") for n in range(20)])
    response = client.consume(GROUP, ConsumeRequest(consumer_id="runbook", topic=TOPIC, max_records=5,
                                                    start_from="earliest"))
    if response.records:
        client.ack(GROUP, [r.lease_id or "" for r in response.records[:3]])  # two stay inflight


@pytest.mark.parametrize("command", COMMANDS)
def test_runbook_command_as_written(goqueue_0: str, tmp_path: Path, command: str) -> None:
    with GoQueueClient(goqueue_0) as client:
        _prepare(client, command)
        if "reset-offset" in command:  # "use with caution": the operator stopped the group's consumers first
            client.delete_group(GROUP, force=True)
            client.declare_group(GROUP, GroupSpec(topics=[TOPIC]))
        if "restore metadata" in command:  # the file the backup step of the same procedure wrote
            (tmp_path / "metadata-backup.json").write_text(client.backup_metadata().model_dump_json(by_alias=True))
    env = {**os.environ, "GOQUEUE_SERVER": goqueue_0}
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{command}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    if "backup metadata" in command:
        backup = MetadataBackup.model_validate_json((tmp_path / "metadata-backup.json").read_text())
        assert GROUP in {g.name for g in backup.groups}
    if "consumer pause --all" in command:
        with GoQueueClient(goqueue_0) as client:
            assert client.describe_group(GROUP).state.value == "Paused"
            client.resume()
