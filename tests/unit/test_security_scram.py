"""SCRAM: the RFCs' test vectors, SHA-512 round trips, and every way a proof is refused."""

from __future__ import annotations

import base64

import pytest

from goqueue.security import scram
from goqueue.security.exchanges import ExchangeTable
from goqueue.security.scram import ClientExchange, ScramCredential, ScramError, ServerExchange, make_credential

pytestmark = pytest.mark.unit

KEY = b"k" * 32

# RFC 7677 section 3 (SCRAM-SHA-256): user "user", password "pencil".
RFC7677 = {
    "client_nonce": "rOprNGfwEbeRWgbNEkqO",
    "server_nonce": "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "salt": "W22ZaJ0SNY7soEsUEjb6gQ==",
    "client_first": "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_first": "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def rfc_credential() -> ScramCredential:
    return make_credential("pencil", salt=base64.b64decode(RFC7677["salt"]), iterations=4096, hash_name="sha256")


def test_rfc7677_client_side() -> None:
    client = ClientExchange("user", "pencil", nonce=RFC7677["client_nonce"], hash_name="sha256")
    assert client.client_first == RFC7677["client_first"]
    assert client.respond(RFC7677["server_first"]) == RFC7677["client_final"]
    client.verify(RFC7677["server_final"])


def test_rfc7677_server_side() -> None:
    server = ServerExchange(RFC7677["client_first"], {"user": rfc_credential()}.get, unknown_user_key=KEY,
                            nonce=RFC7677["server_nonce"], hash_name="sha256")
    assert server.server_first == RFC7677["server_first"]
    assert server.finish(RFC7677["client_final"]) == RFC7677["server_final"]


def exchange(password: str, credential: ScramCredential) -> tuple[ServerExchange, ClientExchange, str]:
    client = ClientExchange("alice", password)
    server = ServerExchange(client.client_first, {"alice": credential}.get, unknown_user_key=KEY)
    return server, client, client.respond(server.server_first)


def test_sha512_round_trip_and_the_stored_credential_holds_no_password() -> None:
    credential = make_credential("s3cret-pw")
    assert len(credential.stored_key) == len(credential.server_key) == 64  # SHA-512
    assert credential.iterations >= scram.MIN_ITERATIONS
    assert b"s3cret-pw" not in credential.stored_key + credential.server_key + credential.salt
    server, client, final = exchange("s3cret-pw", credential)
    client.verify(server.finish(final))


def test_a_wrong_password_is_refused() -> None:
    server, _, final = exchange("wrong", make_credential("right"))
    with pytest.raises(ScramError, match="wrong user name or password"):
        server.finish(final)


def test_an_unknown_user_looks_like_a_known_one_until_refused() -> None:
    client = ClientExchange("nobody", "pw")
    first = ServerExchange(client.client_first, {}.get, unknown_user_key=KEY)
    again = ServerExchange(client.client_first, {}.get, unknown_user_key=KEY)
    assert first.server_first.split(",")[1:] == again.server_first.split(",")[1:]  # same salt and iterations
    with pytest.raises(ScramError, match="wrong user name or password"):
        first.finish(client.respond(first.server_first))


def test_a_client_final_is_used_once() -> None:
    server, _, final = exchange("pw", make_credential("pw"))
    server.finish(final)
    with pytest.raises(ScramError, match="finished"):
        server.finish(final)


def test_a_client_final_of_another_exchange_is_refused() -> None:
    credential = make_credential("pw")
    _, _, old_final = exchange("pw", credential)
    fresh, _, _ = exchange("pw", credential)
    with pytest.raises(ScramError, match="nonce"):
        fresh.finish(old_final)


def test_a_tampered_proof_is_refused() -> None:
    server, _, final = exchange("pw", make_credential("pw"))
    head, proof = final.rsplit(",p=", 1)
    flipped = base64.b64encode(bytes([base64.b64decode(proof)[0] ^ 1]) + base64.b64decode(proof)[1:]).decode()
    with pytest.raises(ScramError, match="wrong"):
        server.finish(f"{head},p={flipped}")


def test_the_client_refuses_a_server_without_the_credential() -> None:
    server, client, final = exchange("pw", make_credential("pw"))
    server.finish(final)
    with pytest.raises(ScramError, match="signature"):
        client.verify("v=" + base64.b64encode(b"x" * 64).decode())


@pytest.mark.parametrize("message", ["", "y,,n=a,r=b", "n,,r=b,n=a", "n,,n=a", "n,,n=a,r="])
def test_malformed_client_first_is_refused(message: str) -> None:
    with pytest.raises(ScramError, match=r"malformed|channel binding"):
        ServerExchange(message, {}.get, unknown_user_key=KEY)


def test_the_client_refuses_too_few_iterations() -> None:
    client = ClientExchange("alice", "pw", nonce="abc")
    with pytest.raises(ScramError, match="iterations"):
        client.respond("r=abcdef,s=c2FsdA==,i=1000")


def test_too_few_iterations_are_never_stored() -> None:
    with pytest.raises(ValueError, match="4096"):
        make_credential("pw", iterations=1000)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_exchange_table_hands_out_each_exchange_once_and_expires_them() -> None:
    clock = Clock()
    table = ExchangeTable(clock, ttl_s=30)
    server, _, _ = exchange("pw", make_credential("pw"))
    exchange_id = table.add(server)
    assert table.take(exchange_id) is server
    with pytest.raises(ScramError, match="no such SCRAM exchange"):
        table.take(exchange_id)
    late = table.add(server)
    clock.now = 30.0
    with pytest.raises(ScramError, match="no such SCRAM exchange"):
        table.take(late)


def test_the_exchange_table_is_bounded() -> None:
    table = ExchangeTable(Clock(), max_pending=2)
    server, _, _ = exchange("pw", make_credential("pw"))
    ids = [table.add(server) for _ in range(3)]
    assert len(table) == 2
    with pytest.raises(ScramError):
        table.take(ids[0])
