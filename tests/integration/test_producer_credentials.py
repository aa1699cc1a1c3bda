"""`goqueue-cli produce` sends through the batching producer over HTTP binary batches: with --user and a password
it authenticates there as every other command does (a SCRAM exchange, then the session token), and without
credentials on a broker that refuses anonymous clients it fails with the not-authenticated exit code."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_process import BrokerProcess

pytestmark = pytest.mark.integration

PASSWORD = "producer-test-password"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[BrokerProcess, Path]]:
    password_file = tmp_path / "admin-password"
    password_file.write_text(PASSWORD + "\n")
    broker = BrokerProcess(tmp_path / "broker", env={
        "GOQUEUE_SECURITY_ALLOWANONYMOUS": "false", "GOQUEUE_SECURITY_ADMINUSER": "admin",
        "GOQUEUE_SECURITY_ADMINPASSWORDFILE": str(password_file)}).start()
    try:
        yield broker, password_file
    finally:
        broker.stop()


def cli(broker: BrokerProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["goqueue-cli", "--server", broker.url, *args], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)


def test_produce_authenticates_with_the_given_user(secured: tuple[BrokerProcess, Path]) -> None:
    broker, password_file = secured
    user = ("--user", "admin", "--password-file", str(password_file))
    assert cli(broker, *user, "topic", "create", "secured", "--partitions", "2").returncode == 0
    produced = cli(broker, *user, "-o", "json", "produce", "secured", "--partition", "1", stdin="a\nb\nc\n")
    assert produced.returncode == 0, produced.stderr
    assert json.loads(produced.stdout) == [{"partition": 1, "offset": n} for n in range(3)]
    anonymous = cli(broker, "produce", "secured", "--value", "d")
    assert anonymous.returncode == 7, anonymous.stderr
    assert "authentication required" in anonymous.stderr
