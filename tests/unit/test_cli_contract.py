"""The CLI contract without a broker: --help on every command, and usage errors are one line on stderr and a
non-zero exit code, never a traceback. (An unreachable server needs a connection attempt:
tests/integration/test_cli_unreachable.py.)"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer

from goqueue.cli import goqueue_admin, goqueue_cli
from goqueue.cli.runtime import run

pytestmark = pytest.mark.unit

APPS = {"goqueue-cli": goqueue_cli.app, "goqueue-admin": goqueue_admin.app}


def command_paths(prog: str) -> list[list[str]]:
    """Every group and command path of a CLI, e.g. ["group", "reset-offset"]."""
    root = typer.main.get_command(APPS[prog])
    paths: list[list[str]] = [[]]

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group) or hasattr(command, "commands"):
            for name, sub in getattr(command, "commands", {}).items():
                paths.append([*path, name])
                walk(sub, [*path, name])

    walk(root, [])
    return paths


ALL = [(prog, path) for prog in APPS for path in command_paths(prog)]


def test_the_issue_commands_exist() -> None:
    names = {f"{prog} {' '.join(path)}" for prog, path in ALL}
    for expected in (
        "goqueue-cli topic list", "goqueue-cli topic create", "goqueue-cli topic describe", "goqueue-cli topic delete",
        "goqueue-cli group list", "goqueue-cli group describe", "goqueue-cli group reset-offset",
        "goqueue-cli produce", "goqueue-cli consume", "goqueue-admin health", "goqueue-admin metrics",
        "goqueue-admin storage stats", "goqueue-admin inflight list", "goqueue-admin consumer pause",
        "goqueue-admin consumer resume", "goqueue-admin backup metadata", "goqueue-admin restore metadata",
        "goqueue-admin cluster status", "goqueue-admin cluster members", "goqueue-admin cluster leader",
        "goqueue-admin replication status",
    ):
        assert expected in names


@pytest.mark.parametrize(("prog", "path"), ALL, ids=[f"{p} {' '.join(c)}".strip() for p, c in ALL])
def test_help_everywhere(prog: str, path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(APPS[prog], prog, [*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out
    assert "--help" in out


USAGE_ERRORS = [
    ("goqueue-cli", ["topic", "create"]),
    ("goqueue-cli", ["topic", "create", "--name", "x", "--partitions", "0"]),
    ("goqueue-cli", ["topic", "describe"]),
    ("goqueue-cli", ["topic", "alter", "t", "--config", "novalue"]),
    ("goqueue-cli", ["group", "describe"]),
    ("goqueue-cli", ["group", "reset-offset", "--group", "g", "--topic", "t"]),
    ("goqueue-cli", ["group", "reset-offset", "--group", "g", "--topic", "t", "--to-earliest", "--to-latest"]),
    ("goqueue-cli", ["group", "reset-offset", "--group", "g", "--topic", "t", "--to-offset", "-1"]),
    ("goqueue-cli", ["group", "reset-offset", "--group", "g", "--topic", "t", "--to-datetime", "yesterday"]),
    ("goqueue-cli", ["group", "reset-offset", "--topic", "t", "--to-earliest"]),
    ("goqueue-cli", ["consume", "--topic", "t"]),
    ("goqueue-cli", ["consume", "--topic", "t", "--group", "g", "--max", "0"]),
    ("goqueue-cli", ["consume", "--topic", "t", "--group", "g", "--mode", "fifo"]),
    ("goqueue-cli", ["produce"]),
    ("goqueue-cli", ["produce", "--topic", "t", "--value", "v", "--header", "novalue"]),
    ("goqueue-cli", ["-o", "xml", "topic", "list"]),
    ("goqueue-cli", ["topic", "list", "-o", "xml"]),
    ("goqueue-cli", ["no-such-command"]),
    ("goqueue-admin", ["consumer", "pause"]),
    ("goqueue-admin", ["consumer", "pause", "--all", "--group", "g"]),
    ("goqueue-admin", ["consumer", "resume"]),
    ("goqueue-admin", ["inflight", "list", "--limit", "0"]),
    ("goqueue-admin", ["restore", "metadata"]),
    ("goqueue-admin", ["cluster", "nope"]),
]


@pytest.mark.parametrize(("prog", "args"), USAGE_ERRORS, ids=[" ".join(a) for _, a in USAGE_ERRORS])
def test_usage_errors_are_one_line(prog: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(APPS[prog], prog, ["--server", "http://127.0.0.1:9", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


def test_restore_of_an_unreadable_or_wrong_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(goqueue_admin.app, "goqueue-admin", ["restore", "metadata", "/nonexistent/backup.json"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read /nonexistent/backup.json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"topics": "many"}')
    assert run(goqueue_admin.app, "goqueue-admin", ["restore", "metadata", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {wrong} is not a metadata backup")
    assert err.count("\n") == 1
