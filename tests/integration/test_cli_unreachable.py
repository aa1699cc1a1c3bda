"""The CLI contract when the server cannot be reached: one line on stderr naming the address, exit code 6, never a
traceback. Integration, not unit: the CLI really tries to connect (to a loopback port nothing listens on); the rest
of the contract, which needs no connection, is tests/unit/test_cli_contract.py."""

from __future__ import annotations

import pytest
from broker_process import free_port

from goqueue.cli import goqueue_admin, goqueue_cli
from goqueue.cli.runtime import run

pytestmark = pytest.mark.integration

APPS = {"goqueue-cli": goqueue_cli.app, "goqueue-admin": goqueue_admin.app}


@pytest.mark.parametrize(("prog", "args"), [
    ("goqueue-cli", ["topic", "list"]), ("goqueue-cli", ["group", "list"]),
    ("goqueue-admin", ["health"]), ("goqueue-admin", ["cluster", "status"]),
    ("goqueue-admin", ["inflight", "list"]), ("goqueue-admin", ["consumer", "pause", "--all"]),
])
def test_unreachable_server_is_one_line_and_exit_6(prog: str, args: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    server = f"http://127.0.0.1:{free_port()}"  # free a moment ago: nothing listens there
    assert run(APPS[prog], prog, ["--server", server, *args]) == 6
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach {server}")
    assert err.count("\n") == 1
    assert "Traceback" not in err
