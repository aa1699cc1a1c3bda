"""Session tokens: signed, expiring, bound to a cluster's key and a credential."""

from __future__ import annotations

import pytest

from goqueue.security.tokens import Session, TokenError, TokenSigner, cluster_key, credential_tag, random_key

pytestmark = pytest.mark.unit

SESSION = Session("User:alice", 100.0, credential_tag(b"stored"))


def test_a_token_verifies_until_it_expires() -> None:
    signer = TokenSigner(cluster_key("pw"))
    token = signer.issue(SESSION)
    assert signer.verify(token, 99.9) == SESSION
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, 100.0)


def test_every_broker_of_a_cluster_accepts_the_others_tokens_and_no_other_cluster_does() -> None:
    token = TokenSigner(cluster_key("pw")).issue(SESSION)
    assert TokenSigner(cluster_key("pw")).verify(token, 0) == SESSION
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(cluster_key("other")).verify(token, 0)
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(random_key()).verify(token, 0)


def test_the_signing_key_is_not_the_password() -> None:
    assert b"pw" not in cluster_key("pw")


@pytest.mark.parametrize("position", [4, 10, -3])
def test_a_tampered_token_is_refused(position: int) -> None:
    signer = TokenSigner(cluster_key("pw"))
    token = signer.issue(SESSION)
    index = position % len(token)
    tampered = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1:]
    with pytest.raises(TokenError):
        signer.verify(tampered, 0)


def test_a_forged_payload_with_a_longer_life_is_refused() -> None:
    signer = TokenSigner(cluster_key("pw"))
    _, _, signature = signer.issue(SESSION).split(".")
    longer = TokenSigner(b"attacker").issue(Session("User:alice", 10**12, SESSION.credential_tag))
    prefix, payload, _ = longer.split(".")
    with pytest.raises(TokenError, match="signature"):
        signer.verify(f"{prefix}.{payload}.{signature}", 0)


@pytest.mark.parametrize("token", ["", "Bearer", "gq1.", "gq1..", "gq2.a.b", "x" * 50])
def test_garbage_is_refused_without_echoing_it(token: str) -> None:
    with pytest.raises(TokenError) as refused:
        TokenSigner(cluster_key("pw")).verify(token, 0)
    assert token not in str(refused.value) or not token


def test_a_new_password_gets_a_new_tag() -> None:
    assert credential_tag(b"one") != credential_tag(b"two")
