"""CLI conventions without a broker (issue 16, item 3): global flags on every command, names from the argument or
its old flag, YAML output, --version and shell completion. The same conventions against a real broker:
tests/integration/test_cli_conventions.py."""

from __future__ import annotations

import io

import pytest
import typer
import yaml
from rich.console import Console

from goqueue import __version__
from goqueue.cli import goqueue_admin, goqueue_cli
from goqueue.cli.config_keys import TOPIC_KEYS, UnknownConfigKey, canonical_setting
from goqueue.cli.consume import record_line
from goqueue.cli.options import resolve_name, spread_global_options
from goqueue.cli.progress import WaitDisplay
from goqueue.cli.render import Output, print_data
from goqueue.cli.runtime import run
from goqueue.models import DeliveredRecord, GroupSummary, TopicConfig

pytestmark = pytest.mark.unit

APPS = {"goqueue-cli": goqueue_cli.app, "goqueue-admin": goqueue_admin.app}
GLOBAL_FLAGS = {"--server", "--output", "--request-timeout"}


def _commands(prog: str) -> list[tuple[str, object]]:
    root = spread_global_options(typer.main.get_command(APPS[prog]))
    found: list[tuple[str, object]] = []

    def walk(command: object, path: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            found.append((f"{path} {name}", sub))
            walk(sub, f"{path} {name}")

    walk(root, prog)
    return found


@pytest.mark.parametrize("prog", APPS)
def test_every_group_and_command_takes_the_global_flags(prog: str) -> None:
    commands = _commands(prog)
    assert len(commands) > 10
    for path, command in commands:
        flags = {opt for p in getattr(command, "params", []) for opt in p.opts}
        assert flags >= GLOBAL_FLAGS, f"{path} lacks {GLOBAL_FLAGS - flags}"


def test_a_name_from_the_argument_or_its_flag() -> None:
    assert resolve_name("orders", None, what="topic", flag="--name") == "orders"
    assert resolve_name(None, "orders", what="topic", flag="--name") == "orders"
    assert resolve_name("orders", "orders", what="topic", flag="--name") == "orders"
    with pytest.raises(typer.BadParameter, match="two topic names given: 'a' and --name 'b'"):
        resolve_name("a", "b", what="topic", flag="--name")
    with pytest.raises(typer.BadParameter, match="missing group name"):
        resolve_name(None, None, what="group", flag="--group")


@pytest.mark.parametrize(("prog", "args"), [
    ("goqueue-cli", ["topic", "create"]), ("goqueue-cli", ["topic", "describe", "a", "--name", "b"]),
    ("goqueue-cli", ["produce", "--value", "v"]), ("goqueue-cli", ["group", "delete"]),
    ("goqueue-admin", ["consumer", "pause", "g", "--all"])])
def test_name_usage_errors_are_one_line(prog: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(APPS[prog], prog, ["--server", "http://127.0.0.1:9", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Invalid value" not in err
    assert err.count("\n") == 1, err


def test_yaml_output_is_block_yaml_with_the_api_field_names(capsys: pytest.CaptureFixture[str]) -> None:
    info = GroupSummary.model_validate({"name": "orders", "mode": "shared", "state": "Empty", "members": 0,
                                        "topics": ["t"], "lag": 3, "inflight": 2})
    print_data([info], Output.YAML)
    text = capsys.readouterr().out
    assert text.startswith("- name: orders\n")
    loaded = yaml.safe_load(text)
    assert loaded == [info.model_dump(mode="json", by_alias=True)]
    assert loaded[0]["topics"] == ["t"]


def test_consumed_records_as_yaml_documents() -> None:
    records = [DeliveredRecord.model_validate({"topic": "t", "partition": p, "offset": p, "key": None,
                                               "value": f"v{p}", "timestampMs": 1})  for p in range(2)]
    stream = "\n".join(record_line(r, Output.YAML) for r in records)
    documents = list(yaml.safe_load_all(stream))
    assert [(d["partition"], d["value"]) for d in documents] == [(0, "v0"), (1, "v1")]


@pytest.mark.parametrize("prog", APPS)
def test_version_flag(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(APPS[prog], prog, ["--version"]) == 0
    assert capsys.readouterr().out == f"{prog} {__version__}\n"


@pytest.mark.parametrize("prog", APPS)
def test_show_completion_prints_a_script_for_this_cli(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        run(APPS[prog], prog, ["--show-completion", "bash"])
    assert stopped.value.code in (0, None)
    script = capsys.readouterr().out
    assert f"_{prog.replace('-', '_').upper()}_COMPLETE=complete_bash" in script
    assert f"complete -o default -F _{prog.replace('-', '_')}_completion {prog}" in script


def _complete(prog: str, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> set[str]:
    """What bash completion offers for `line` (the word under the cursor is the last one, maybe empty)."""
    words = line.split(" ")
    monkeypatch.setenv(f"_{prog.replace('-', '_').upper()}_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", line)
    monkeypatch.setenv("COMP_CWORD", str(len(words) - 1))
    with pytest.raises(SystemExit):
        run(APPS[prog], prog, [])
    return set(capsys.readouterr().out.split())


@pytest.mark.parametrize(("prog", "line", "expected"), [
    ("goqueue-cli", "goqueue-cli to", {"topic"}),
    ("goqueue-cli", "goqueue-cli group d", {"describe", "delete"}),
    ("goqueue-cli", "goqueue-cli topic list --o", {"--output"}),
    ("goqueue-cli", "goqueue-cli topic list -o ", {"table", "json", "yaml"}),
    ("goqueue-admin", "goqueue-admin cluster ", {"status", "members", "leader", "rebalance"}),
])
def test_completion(prog: str, line: str, expected: set[str], monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _complete(prog, line, monkeypatch, capsys) >= expected


# -- topic setting keys ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "expected"), [
    (("retentionMaxAge", "24h"), ("retentionMaxAge", "24h")),      # the CRD's and the runbook's spelling
    (("retention.maxAge", "24h"), ("retentionMaxAge", "24h")),     # the broker settings' dotted spelling
    (("retention-max-age", "24h"), ("retentionMaxAge", "24h")),
    (("RETENTION_MAX_AGE", "24h"), ("retentionMaxAge", "24h")),
    (("retention.ms", "86400000"), ("retentionMaxAge", "86400000ms")),  # Kafka's, in milliseconds
    (("retention.bytes", "1073741824"), ("retentionMaxSize", "1073741824")),
    (("cleanup.policy", "compact"), ("cleanupPolicy", "compact")),
    (("min.insync.replicas", "2"), ("minInsyncReplicas", "2")),
    (("unclean.leader.election.enable", "true"), ("uncleanLeaderElection", "true")),
    (("delete.retention.ms", "1000"), ("tombstoneRetention", "1000ms")),
])
def test_every_spelling_of_a_setting_becomes_the_crd_key(typed: tuple[str, str], expected: tuple[str, str]) -> None:
    assert canonical_setting(*typed) == expected


def test_the_crd_keys_are_the_api_keys() -> None:
    assert set(TOPIC_KEYS) == {f.alias for f in TopicConfig.model_fields.values()}


def test_an_unknown_setting_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownConfigKey, match="use one of cleanupPolicy, retentionMaxAge"):
        canonical_setting("retention.hours", "1")
    assert run(goqueue_cli.app, "goqueue-cli", ["topic", "alter", "t", "--config", "retention.hours=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "unknown setting 'retention.hours'" in err
    assert err.count("\n") == 1


# -- progress display --------------------------------------------------------------------------------------------

def _terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=80), buffer


def test_the_wait_display_shows_on_a_terminal_and_goes_away() -> None:
    console, buffer = _terminal()
    with WaitDisplay(True, "waiting for records on t", console=console, show_after_s=3600) as display:
        assert not display.shown  # nothing before the wait has lasted show_after_s
        display.show()
        display.update("3 of 8 partitions under-replicated")
        assert display.shown
    assert "3 of 8 partitions under-replicated" in buffer.getvalue()


@pytest.mark.parametrize("terminal", [True, False])
def test_no_wait_display_for_scripts_or_without_a_terminal(terminal: bool) -> None:
    console, buffer = _terminal() if terminal else (Console(file=io.StringIO()), io.StringIO())
    with WaitDisplay(not terminal, "waiting", console=console, show_after_s=3600) as display:  # -o json: False
        display.show()
        assert not display.shown
    assert buffer.getvalue() == ""
