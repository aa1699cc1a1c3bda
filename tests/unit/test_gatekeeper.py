"""The gatekeeper over an in-memory metadata: sessions end with their user or password, super users, ACLs on/off."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from goqueue.api.gatekeeper import Gatekeeper, acl_entry
from goqueue.client.auth import Credentials, client_final
from goqueue.config import Settings, load_settings
from goqueue.errors import Forbidden, Unauthenticated
from goqueue.replication import commands
from goqueue.replication.metadata import apply_command, empty_state
from goqueue.replication.state import MetadataState
from goqueue.replication.view import MetadataView
from goqueue.security.acls import Acl, Operation, PatternType, ResourceType, topic
from goqueue.security.principal import ANONYMOUS, user
from goqueue.security.scram import make_credential

pytestmark = pytest.mark.unit

CLUSTER = {"GOQUEUE_CLUSTER_PEERS": "a:7000,b:7000", "GOQUEUE_CLUSTER_PASSWORD": "pw", "GOQUEUE_BROKER_ID": "0"}


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def keeper(settings: Settings, state: MetadataState, clock: Clock) -> Gatekeeper:
    return Gatekeeper(settings, lambda: MetadataView(state), clock)


def save_user(state: MetadataState, name: str, password: str) -> None:
    credential = make_credential(password, iterations=4096)
    apply_command(state, commands.upsert_user(name, {
        "salt": credential.salt, "iterations": credential.iterations, "stored_key": credential.stored_key,
        "server_key": credential.server_key}))


def login(gatekeeper: Gatekeeper, name: str, password: str) -> str:
    exchange = Credentials(name, password).exchange()
    started = gatekeeper.scram_start(exchange.client_first)
    finished = gatekeeper.scram_finish(started.exchange_id, client_final(exchange, started.server_first))
    exchange.verify(finished.server_final)
    return f"Bearer {finished.token}"


def test_a_session_ends_with_its_expiry_its_password_or_its_user() -> None:
    state, clock = empty_state(), Clock()
    gatekeeper = keeper(load_settings(None, {**CLUSTER, "GOQUEUE_SECURITY_TOKENLIFETIME": "60s"}), state, clock)
    save_user(state, "alice", "one")
    bearer = login(gatekeeper, "alice", "one")
    assert gatekeeper.principal(bearer) == user("alice")
    clock.now += 60
    with pytest.raises(Unauthenticated, match="expired"):
        gatekeeper.principal(bearer)
    bearer = login(gatekeeper, "alice", "one")
    save_user(state, "alice", "two")
    with pytest.raises(Unauthenticated, match="password changed"):
        gatekeeper.principal(bearer)
    bearer = login(gatekeeper, "alice", "two")
    apply_command(state, commands.delete_user("alice"))
    with pytest.raises(Unauthenticated, match="deleted"):
        gatekeeper.principal(bearer)


def test_another_broker_of_the_cluster_accepts_the_token() -> None:
    state, clock = empty_state(), Clock()
    save_user(state, "alice", "pw")
    settings = load_settings(None, CLUSTER)
    bearer = login(keeper(settings, state, clock), "alice", "pw")
    assert keeper(settings, state, clock).principal(bearer) == user("alice")


def test_no_credentials_are_anonymous_only_where_allowed() -> None:
    state, clock = empty_state(), Clock()
    with pytest.raises(Unauthenticated, match="anonymous access is off"):
        keeper(load_settings(None, CLUSTER), state, clock).principal(None)
    alone = keeper(load_settings(None, {}), state, clock)
    assert alone.principal(None) == ANONYMOUS
    assert alone.allowed(ANONYMOUS, topic("t"), Operation.DELETE)  # the quick start: ACLs off with anonymous on
    with pytest.raises(Unauthenticated, match="Bearer"):
        alone.principal("Basic YWxpY2U6cHc=")  # credentials present but not a token: refused, never anonymous


def test_acls_super_users_and_the_message_of_a_refusal() -> None:
    state, clock = empty_state(), Clock()
    settings = load_settings(None, {**CLUSTER, "GOQUEUE_SECURITY_SUPERUSERS": "User:root"})
    gatekeeper = keeper(settings, state, clock)
    with pytest.raises(Forbidden) as refused:
        gatekeeper.check(user("alice"), topic("orders"), Operation.PRODUCE)
    assert refused.value.message == "User:alice may not produce topic 'orders': no ACL allows it"
    assert refused.value.details == {"principal": "User:alice", "operation": "produce", "resource": "topic 'orders'"}
    gatekeeper.check(user("root"), topic("orders"), Operation.DELETE)
    apply_command(state, commands.add_acl(acl_entry(Acl("User:alice", ResourceType.TOPIC, "ord", PatternType.PREFIXED,
                                                        Operation.PRODUCE))))
    gatekeeper.check(user("alice"), topic("orders"), Operation.PRODUCE)  # the new ACL is seen at once
    off = keeper(load_settings(None, {**CLUSTER, "GOQUEUE_SECURITY_ACLSENABLED": "false"}), state, clock)
    off.check(user("bob"), topic("orders"), Operation.DELETE)


def test_the_configured_administrator_logs_in_from_its_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "admin"
    secret.write_text("admin-pw\n")
    settings = load_settings(None, {**CLUSTER, "GOQUEUE_SECURITY_ADMINUSER": "admin",
                                    "GOQUEUE_SECURITY_ADMINPASSWORDFILE": str(secret)})
    state, clock = empty_state(), Clock()
    bearer = login(keeper(settings, state, clock), "admin", "admin-pw")
    other = keeper(settings, state, clock)  # another broker: the same derived credential
    assert other.principal(bearer) == user("admin")
    other.check(user("admin"), topic("anything"), Operation.DELETE)
    with pytest.raises(Unauthenticated):
        login(other, "admin", "wrong")


def test_anonymous_access_is_announced_at_start_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="goqueue.api.gatekeeper"):
        keeper(load_settings(None, {}), empty_state(), Clock())
        keeper(load_settings(None, CLUSTER), empty_state(), Clock())  # off with peers: nothing to announce
    warnings = [r for r in caplog.records if r.message == "security.anonymous_access_allowed"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "quick start" in warnings[0].reason  # type: ignore[attr-defined]  # an `extra` field of the record


def test_a_user_deleted_during_the_exchange_gets_no_working_session() -> None:
    state, clock = empty_state(), Clock()
    gatekeeper = keeper(load_settings(None, CLUSTER), state, clock)
    save_user(state, "alice", "pw")
    exchange = Credentials("alice", "pw").exchange()
    started = gatekeeper.scram_start(exchange.client_first)
    apply_command(state, commands.delete_user("alice"))
    finished = gatekeeper.scram_finish(started.exchange_id, client_final(exchange, started.server_first))
    with pytest.raises(Unauthenticated, match="deleted"):
        gatekeeper.principal(f"Bearer {finished.token}")


def test_two_brokers_answer_an_unknown_user_as_they_answer_a_real_one() -> None:
    """Asking two brokers of one cluster must not tell a real user (one stored salt) from a made-up name: the
    made-up credential is derived alike on every broker, so both answer it with the same salt too."""
    state, clock = empty_state(), Clock()
    save_user(state, "alice", "pw")
    settings = load_settings(None, CLUSTER)

    def salt(name: str, broker: Gatekeeper) -> str:
        server_first = broker.scram_start(Credentials(name, "guess").exchange().client_first).server_first
        return dict(part.split("=", 1) for part in server_first.split(","))["s"]

    one, two = keeper(settings, state, clock), keeper(settings, state, clock)
    assert salt("alice", one) == salt("alice", two)
    assert salt("mallory", one) == salt("mallory", two)
    other_cluster = keeper(load_settings(None, {**CLUSTER, "GOQUEUE_CLUSTER_PASSWORD": "other"}), state, clock)
    assert salt("mallory", other_cluster) != salt("mallory", one)


def test_the_admins_salt_does_not_depend_on_the_cluster_password(tmp_path: Path) -> None:
    """server-first hands the salt to anyone naming the admin: one computed from cluster.password would let them
    test guesses of that password offline at hash speed."""
    secret = tmp_path / "admin-password"
    secret.write_text("admin-pw\n")
    admin = {"GOQUEUE_SECURITY_ADMINUSER": "root", "GOQUEUE_SECURITY_ADMINPASSWORDFILE": str(secret)}
    state, clock = empty_state(), Clock()

    def salt(password: str) -> str:
        broker = keeper(load_settings(None, {**CLUSTER, **admin, "GOQUEUE_CLUSTER_PASSWORD": password}), state, clock)
        server_first = broker.scram_start(Credentials("root", "admin-pw").exchange().client_first).server_first
        return dict(part.split("=", 1) for part in server_first.split(","))["s"]

    assert salt("cluster-one") == salt("cluster-two")
