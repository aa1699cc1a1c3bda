"""Client credentials: when a token is renewed, what a new user's credential holds, and the CLIs' password options."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from goqueue.cli.render import Output
from goqueue.cli.runtime import CliContext
from goqueue.client.auth import Credentials, TokenHolder, credential_spec
from goqueue.errors import InvalidRequest
from goqueue.security.scram import ScramCredential, ServerExchange

pytestmark = pytest.mark.unit


def test_a_token_is_renewed_once_most_of_its_life_has_passed() -> None:
    tokens = TokenHolder()
    assert tokens.current(0.0) is None
    tokens.store("t1", expires_at_s=100.0, now_s=0.0)
    assert tokens.current(79.9) == "t1"
    assert tokens.current(80.0) is None  # 80 %: renewed before the broker would refuse it
    tokens.store("t2", expires_at_s=200.0, now_s=100.0)
    tokens.forget()
    assert tokens.current(100.0) is None


def test_a_new_users_credential_is_computed_here_and_holds_no_password() -> None:
    spec = credential_spec("correct horse")
    assert "correct horse" not in spec.model_dump_json()
    stored = ScramCredential(base64.b64decode(spec.salt), spec.iterations, base64.b64decode(spec.stored_key),
                             base64.b64decode(spec.server_key))
    client = Credentials("alice", "correct horse").exchange()
    server = ServerExchange(client.client_first, {"alice": stored}.get, unknown_user_key=b"k")
    client.verify(server.finish(client.respond(server.server_first)))


def test_credentials_are_not_printed() -> None:
    assert "hunter2" not in repr(Credentials("alice", "hunter2"))
    assert "hunter2" not in repr(CliContext("http://b", Output.TABLE, user="alice", password="hunter2"))


def context(**fields: object) -> CliContext:
    return CliContext("http://b", Output.TABLE, **fields)  # type: ignore[arg-type]


def test_the_password_file_is_preferred_and_a_password_needs_a_user(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\nignored\n")
    assert context().credentials() is None  # anonymous
    assert context(user="alice", password="argv", password_file=secret).credentials() == Credentials(
        "alice", "from-file")
    assert context(user="alice", password="argv").credentials() == Credentials("alice", "argv")
    with pytest.raises(InvalidRequest, match="needs a password"):
        context(user="alice").credentials()
    with pytest.raises(InvalidRequest, match="without --user"):
        context(password="argv").credentials()
    (tmp_path / "empty").write_text("")
    with pytest.raises(InvalidRequest, match="is empty"):
        context(user="alice", password_file=tmp_path / "empty").credentials()
    with pytest.raises(InvalidRequest, match="No such file"):
        context(user="alice", password_file=tmp_path / "missing").credentials()
