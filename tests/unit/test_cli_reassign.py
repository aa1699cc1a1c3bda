"""`goqueue-admin partition reassign` refuses bad input before asking any broker: one clear line and the usage exit
code (2). With a broker: tests/integration/test_runbook_commands.py runs the runbook's plan, execute and verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from goqueue.cli import goqueue_admin
from goqueue.cli.runtime import run

pytestmark = pytest.mark.unit

NOWHERE = ["--server", "http://127.0.0.1:9"]  # nothing listens: any request would be exit 6, not 2


@pytest.mark.parametrize(("args", "message"), [
    (["--plan", "--execute", "plan.json"], "give exactly one of --plan, --execute FILE, --verify FILE, --cancel"),
    ([], "give exactly one of"),
    (["--plan", "--replication-factor", "orders"], "--replication-factor takes TOPIC=N, not 'orders'"),
    (["--plan", "--replication-factor", "orders=two"], "takes TOPIC=N"),
    (["--plan", "--replication-factor", "orders=0"], "replicationFactor.orders"),
    (["--plan", "--balance", "--throttle", "fast"], "throttle"),
    (["--execute", "missing.json"], "cannot read missing.json"),
    (["--verify", "not-a-plan.json"], "is not a plan from `goqueue-admin partition reassign --plan -o json`"),
])
def test_bad_input_is_a_usage_error_before_any_request(args: list[str], message: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-plan.json").write_text('{"moves": "none"}')
    assert run(goqueue_admin.app, "goqueue-admin", [*NOWHERE, "partition", "reassign", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
