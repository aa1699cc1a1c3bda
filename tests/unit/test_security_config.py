"""The `security` section: anonymous access on for a lone broker, off once peers are configured, unless explicit."""

from __future__ import annotations

import pytest

from goqueue.config import ConfigError, load_settings

pytestmark = pytest.mark.unit

PEERS = {"GOQUEUE_CLUSTER_PEERS": "a:7000,b:7000,c:7000", "GOQUEUE_CLUSTER_PASSWORD": "pw", "GOQUEUE_BROKER_ID": "0"}


def test_anonymous_access_defaults_on_alone_and_off_with_peers() -> None:
    alone = load_settings(None, {})
    assert alone.security.anonymous_allowed(alone.cluster.peers)
    clustered = load_settings(None, PEERS)
    assert not clustered.security.anonymous_allowed(clustered.cluster.peers)


def test_every_security_key_comes_from_the_environment() -> None:
    settings = load_settings(None, {**PEERS, "GOQUEUE_SECURITY_ALLOWANONYMOUS": "true",
                                    "GOQUEUE_SECURITY_ACLSENABLED": "false",
                                    "GOQUEUE_SECURITY_SUPERUSERS": "User:admin, User:ops",
                                    "GOQUEUE_SECURITY_TOKENLIFETIME": "15m"})
    assert settings.security.anonymous_allowed(settings.cluster.peers)
    assert not settings.security.acls_enabled
    assert settings.security.super_users == ["User:admin", "User:ops"]
    assert settings.security.token_lifetime_s == 900


def test_a_super_user_must_be_a_principal() -> None:
    with pytest.raises(ConfigError, match="superUsers entry 'admin' is not User:<name>"):
        load_settings(None, {"GOQUEUE_SECURITY_SUPERUSERS": "admin"})
