"""Authentication and ACLs on a real three-broker cluster with anonymous access off (issue 15, items 4 and 5).

Each refusal is checked on every door: the HTTP API (status and error code), the gRPC API (status and the
`goqueue-error-code` trailer, through the typed client) and the CLIs (exit code 7 UNAUTHENTICATED, 8 FORBIDDEN).
The principals: `admin` (the configured administrator, a super user), `alice` (may produce to `orders`), `bob` (may
consume group `readers` and topic `public`), `carol` (no ACL at all).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import grpc
import httpx
import pytest
from broker_process import BrokerFactory
from cluster_process import LocalCluster, password_files, secured_env

from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.client.auth import Credentials
from goqueue.client.grpc_batch_transport import GrpcBatchTransport
from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.client.producer import Producer
from goqueue.errors import Forbidden, Unauthenticated
from goqueue.models import AclSpec, ConsumeRequest, ProduceRecord, TopicCreate
from goqueue.records import RecordIn
from goqueue.security.scram import ClientExchange
from goqueue.storage.batch import build_batch

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PASSWORDS = {"admin": "admin-secret-pw", "alice": "alice-secret-pw", "bob": "bob-secret-pw",
             "carol": "carol-secret-pw"}
EXIT_UNAUTHENTICATED, EXIT_FORBIDDEN = 7, 8


def creds(user: str, password: str | None = None) -> Credentials:
    return Credentials(user, password or PASSWORDS[user])


def acl(principal: str, resource_type: str, name: str, operation: str) -> AclSpec:
    return AclSpec.model_validate({"principal": principal, "resourceType": resource_type, "name": name,
                                   "operation": operation})


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return password_files(tmp_path_factory.mktemp("secrets"), PASSWORDS)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, secrets_dir: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("secure"), env=secured_env(secrets_dir)).start()
    try:
        with GoQueueClient(cluster.url(0), credentials=creds("admin")) as admin:
            for user in ("alice", "bob", "carol"):
                admin.upsert_user(user, PASSWORDS[user])
            admin.create_topic(TopicCreate(name="orders", partitions=3, replication_factor=3))
            admin.create_topic(TopicCreate(name="public", partitions=1, replication_factor=3))
            admin.produce("public", [ProduceRecord(value="hello")])
            for entry in (acl("User:alice", "topic", "orders", "produce"),
                          acl("User:bob", "group", "readers", "consume"),
                          acl("User:bob", "topic", "public", "consume")):
                admin.add_acl(entry)
        yield cluster
    finally:
        cluster.stop()


def cli(url: str, *args: str, expect: int, env: Mapping[str, str] | None = None) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GOQUEUE_")}
    environment.update({"GOQUEUE_SERVER": url, **(env or {})})
    result = subprocess.run(list(args), env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stderr


def as_user(secrets_dir: Path, user: str) -> dict[str, str]:
    return {"GOQUEUE_USER": user, "GOQUEUE_PASSWORD_FILE": str(secrets_dir / user)}


def http_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return str(error["message"])


def token(url: str, user: str, password: str | None = None) -> str:
    exchange = ClientExchange(user, password or PASSWORDS[user])
    with httpx.Client(base_url=url) as http:
        started = http.post("/v1/auth/scram/start", json={"clientFirst": exchange.client_first}).json()
        finished = http.post("/v1/auth/scram/finish", json={
            "exchangeId": started["exchangeId"], "clientFinal": exchange.respond(started["serverFirst"])})
    assert finished.status_code == 200, finished.text
    exchange.verify(finished.json()["serverFinal"])
    return str(finished.json()["token"])


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


# -- anonymous access is off ---------------------------------------------------------------------------------------

def test_an_anonymous_admin_call_is_refused(cluster: LocalCluster, secrets_dir: Path) -> None:
    url = cluster.url(1)
    message = http_error(httpx.post(f"{url}/v1/admin/cluster/rebalance"), 401, "UNAUTHENTICATED")
    assert "anonymous access is off" in message
    http_error(httpx.get(f"{url}/v1/admin/storage"), 401, "UNAUTHENTICATED")
    cli(url, "goqueue-admin", "inflight", "list", expect=EXIT_UNAUTHENTICATED)
    cli(url, "goqueue-admin", "storage", "stats", expect=EXIT_UNAUTHENTICATED)
    cli(url, "goqueue-admin", "cluster", "status", expect=EXIT_UNAUTHENTICATED)
    # An authenticated user without admin on the cluster: forbidden, naming who, what and where.
    message = http_error(httpx.get(f"{url}/v1/admin/storage", headers=bearer(token(url, "alice"))), 403,
                         "FORBIDDEN")
    assert message == "User:alice may not admin the cluster: no ACL allows it"
    assert "may not admin" in cli(url, "goqueue-admin", "storage", "stats", expect=EXIT_FORBIDDEN,
                                  env=as_user(secrets_dir, "alice"))
    cli(url, "goqueue-admin", "storage", "stats", expect=0, env=as_user(secrets_dir, "admin"))
    cli(url, "goqueue-admin", "inflight", "list", expect=0, env=as_user(secrets_dir, "admin"))  # asks every broker
    cli(url, "goqueue-admin", "user", "list", expect=EXIT_FORBIDDEN, env=as_user(secrets_dir, "bob"))
    # The probes, the metrics and the version stay open.
    for path in ("/healthz", "/readyz", "/metrics", "/v1/version"):
        assert httpx.get(url + path).status_code == 200, path


async def test_an_anonymous_grpc_call_is_refused(cluster: LocalCluster) -> None:
    async with GrpcClient(cluster.brokers[1].grpc_target) as client:
        with pytest.raises(Unauthenticated, match="anonymous access is off"):
            await client.list_topics()


def test_anonymous_produce_to_a_protected_topic_is_refused(cluster: LocalCluster) -> None:
    url = cluster.url(0)
    http_error(httpx.post(f"{url}/v1/topics/orders/records", json={"records": [{"value": "x"}]}), 401,
               "UNAUTHENTICATED")
    with GoQueueClient(url, idempotent=False) as anonymous, pytest.raises(Unauthenticated):
        anonymous.produce("orders", [ProduceRecord(value="x")])
    cli(url, "goqueue-cli", "produce", "orders", "--value", "x", expect=EXIT_UNAUTHENTICATED)


async def test_anonymous_grpc_produce_is_refused(cluster: LocalCluster) -> None:
    async with GrpcClient(cluster.brokers[0].grpc_target, idempotent=False) as client:
        with pytest.raises(Unauthenticated):
            await client.produce("orders", [RecordIn(None, b"x", [])])


def leaders(cluster: LocalCluster, topic: str) -> dict[int, int | None]:
    """Partition → leader."""
    with GoQueueClient(cluster.url(0), credentials=creds("admin")) as admin:
        return {p.partition: p.leader for p in admin.describe_topic(topic).partition_details}


def test_a_user_produces_only_where_an_acl_allows(cluster: LocalCluster, secrets_dir: Path) -> None:
    url = cluster.url(2)
    with GoQueueClient(url, credentials=creds("alice")) as alice:  # every partition: most forwarded to their leader
        offsets = alice.produce("orders", [ProduceRecord(key=f"order-{n}", value="a") for n in range(30)]).offsets
        assert {o.partition for o in offsets} == {0, 1, 2}
        with pytest.raises(Forbidden, match="User:alice may not describe topic 'public'"):  # the producer's lookup
            alice.produce("public", [ProduceRecord(value="a")])
    with GoQueueClient(url, credentials=creds("alice"), idempotent=False) as alice, \
            pytest.raises(Forbidden, match="User:alice may not produce topic 'public'"):
        alice.produce("public", [ProduceRecord(value="a")])
    cli(url, "goqueue-cli", "produce", "orders", "--value", "x", expect=EXIT_FORBIDDEN,
        env=as_user(secrets_dir, "carol"))


async def test_a_grpc_produce_without_an_acl_is_permission_denied(cluster: LocalCluster) -> None:
    async with GrpcClient(cluster.brokers[0].grpc_target, credentials=creds("carol"), idempotent=False) as carol:
        with pytest.raises(Forbidden, match="User:carol may not produce topic 'orders'"):
            await carol.produce("orders", [RecordIn(None, b"x", [])], partition=0)
    async with GrpcClient(cluster.brokers[0].grpc_target, credentials=creds("alice")) as alice:
        assert (await alice.produce("orders", [RecordIn(str(n).encode(), b"y", []) for n in range(12)])).offsets
    channel = grpc.aio.insecure_channel(cluster.brokers[0].grpc_target)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary("/goqueue.v1.GoQueue/DeleteTopic", request_serializer=pb.DeleteTopicRequest
                                      .SerializeToString, response_deserializer=pb.DeleteTopicResponse.FromString)(
                pb.DeleteTopicRequest(name="orders"), metadata=(("authorization", "Bearer " + token(
                    cluster.url(0), "alice")),))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert ("goqueue-error-code", "FORBIDDEN") in tuple(refused.value.trailing_metadata() or ())
    finally:
        await channel.close()


def test_users_and_acls_are_managed_with_goqueue_admin(cluster: LocalCluster, secrets_dir: Path) -> None:
    url, admin = cluster.url(1), as_user(secrets_dir, "admin")
    (secrets_dir / "dave").write_text("dave-secret-pw\n")
    cli(url, "goqueue-admin", "user", "create", "dave", "--new-password-file", str(secrets_dir / "dave"),
        expect=EXIT_UNAUTHENTICATED)
    cli(url, "goqueue-admin", "user", "create", "dave", expect=2, env=admin)  # no terminal, no file: never argv
    cli(url, "goqueue-admin", "user", "create", "dave", "--new-password-file", str(secrets_dir / "dave"), expect=0,
        env=admin)
    dave = as_user(secrets_dir, "dave")
    cli(url, "goqueue-cli", "topic", "describe", "public", expect=EXIT_FORBIDDEN, env=dave)
    cli(url, "goqueue-admin", "acl", "add", "-p", "User:dave", "-r", "topic", "-n", "pub", "--prefixed",
        "--operation", "describe", expect=0, env=admin)
    cli(url, "goqueue-cli", "topic", "describe", "public", expect=0, env=dave)
    listed = subprocess.run(["goqueue-admin", "acl", "list", "-p", "User:dave", "-o", "json"], capture_output=True,
                            text=True, check=True, env={**os.environ, "GOQUEUE_SERVER": url, **admin}).stdout
    assert '"pattern": "prefixed"' in listed
    cli(url, "goqueue-admin", "acl", "remove", "-p", "User:dave", "-r", "topic", "-n", "pub", "--prefixed",
        "--operation", "describe", expect=0, env=admin)
    cli(url, "goqueue-admin", "acl", "remove", "-p", "User:dave", "-r", "topic", "-n", "pub", "--prefixed",
        "--operation", "describe", expect=3, env=admin)  # ACL_NOT_FOUND
    cli(url, "goqueue-admin", "user", "delete", "dave", expect=0, env=admin)
    cli(url, "goqueue-cli", "topic", "list", expect=EXIT_UNAUTHENTICATED, env=dave)


async def test_the_batching_producer_authenticates_over_grpc(cluster: LocalCluster) -> None:
    target = cluster.brokers[1].grpc_target
    async with Producer(GrpcBatchTransport(target, credentials=creds("alice"))) as alice:
        assert (await alice.send_and_wait("orders", RecordIn(b"k", b"batched", []))).offset >= 0
    async with Producer(GrpcBatchTransport(target, credentials=creds("carol"))) as carol:
        with pytest.raises(Forbidden, match="User:carol may not describe topic 'orders'"):
            await carol.send_and_wait("orders", RecordIn(b"k", b"no", []))


async def test_grpc_streams_carry_the_session_token(cluster: LocalCluster) -> None:
    """A client stream, a bidirectional one and a server stream, each as its own user: every kind of call is sent
    with the token (streams once went without it and were refused UNAUTHENTICATED)."""
    target = cluster.brokers[1].grpc_target

    async def one_batch() -> AsyncIterator[tuple[int, bytes]]:
        yield 0, bytes(build_batch([(b"k", b"streamed batch", [])], 0))

    async def one_request() -> AsyncIterator[list[RecordIn]]:
        yield [RecordIn(b"k", b"streamed", [])]

    async with GrpcClient(target, credentials=creds("alice")) as alice:
        async with contextlib.aclosing(alice.produce_batch_stream("orders", one_batch())) as answers:
            assert [answer.base_offset >= 0 async for answer in answers] == [True]
        async with contextlib.aclosing(alice.produce_stream("orders", one_request(), partition=0)) as responses:
            assert [len(response.offsets) async for response in responses] == [1]
    async with GrpcClient(target, credentials=creds("bob")) as bob:
        async with contextlib.aclosing(bob.fetch_stream("public", 0, 0)) as followed:
            first = await anext(followed)
        assert [record.value for record in first.records] == [b"hello"]

        async def bob_produces() -> None:  # each batch on the stream is checked, and a refusal is its answer
            async with contextlib.aclosing(bob.produce_batch_stream("orders", one_batch())) as answers:
                async for _ in answers:
                    pass

        with pytest.raises(Forbidden, match="User:bob may not produce topic 'orders'"):
            await bob_produces()


# -- a consumer reads only what its ACLs allow ---------------------------------------------------------------------

def not_coordinating(cluster: LocalCluster) -> int:
    """A broker that does not coordinate the groups (one state partition): it checks a group call, then forwards it."""
    return not_leading(cluster, "__consumer_state", 0)


def test_a_consumer_reading_a_topic_its_acl_lacks_is_refused(cluster: LocalCluster, secrets_dir: Path) -> None:
    url = cluster.url(not_coordinating(cluster))
    with GoQueueClient(url, credentials=creds("bob")) as bob:
        read = bob.consume("readers", ConsumeRequest(consumer_id="c1", topic="public", start_from="earliest",
                                                      max_records=10))
        assert [r.value for r in read.records] == ["hello"]
        with pytest.raises(Forbidden, match="User:bob may not consume topic 'orders'"):
            bob.consume("readers", ConsumeRequest(consumer_id="c1", topic="orders"))
        with pytest.raises(Forbidden, match="User:bob may not consume topic 'orders'"):
            bob.fetch("orders", 0, 0)
        with pytest.raises(Forbidden, match="User:bob may not consume group 'other'"):
            bob.consume("other", ConsumeRequest(consumer_id="c1", topic="public"))
        assert [t.name for t in bob.list_topics()] == ["public"]  # the list shows what bob may describe
        listed = {p.topic for p in bob.replication_status().partitions}
        assert listed == {"public"}, listed  # so do the partitions of the replication read-out
    assert "may not consume topic 'orders'" in cli(
        url, "goqueue-cli", "consume", "orders", "--group", "readers", "--max", "1", expect=EXIT_FORBIDDEN,
        env=as_user(secrets_dir, "bob"))


async def test_a_grpc_consumer_reading_a_topic_its_acl_lacks_is_refused(cluster: LocalCluster) -> None:
    broker = cluster.brokers[not_coordinating(cluster)]
    async with GrpcClient(broker.grpc_target, credentials=creds("bob")) as bob:
        with pytest.raises(Forbidden, match="User:bob may not consume topic 'orders'"):
            await bob.consume("readers", ConsumeRequest(consumer_id="c2", topic="orders"))
        with pytest.raises(Forbidden, match="User:bob may not consume topic 'orders'"):
            await bob.fetch("orders", 0, 0)
        assert (await bob.consume("readers", ConsumeRequest(consumer_id="c2", topic="public"))).paused is False


# -- SCRAM: replays and wrong passwords ----------------------------------------------------------------------------

def test_a_replayed_scram_exchange_is_refused(cluster: LocalCluster) -> None:
    url = cluster.url(0)
    exchange = ClientExchange("alice", PASSWORDS["alice"])
    with httpx.Client(base_url=url) as http:
        started = http.post("/v1/auth/scram/start", json={"clientFirst": exchange.client_first}).json()
        final = {"exchangeId": started["exchangeId"], "clientFinal": exchange.respond(started["serverFirst"])}
        assert http.post("/v1/auth/scram/finish", json=final).status_code == 200
        # The same client-final again: the exchange is finished.
        http_error(http.post("/v1/auth/scram/finish", json=final), 401, "UNAUTHENTICATED")
        # ... or sent to a fresh exchange of the same user: its nonce is not this one's.
        fresh = http.post("/v1/auth/scram/start", json={"clientFirst": exchange.client_first}).json()
        message = http_error(http.post("/v1/auth/scram/finish", json={
            "exchangeId": fresh["exchangeId"], "clientFinal": final["clientFinal"]}), 401, "UNAUTHENTICATED")
        assert PASSWORDS["alice"] not in message
    # A token is valid on every broker of the cluster (one signing key, derived from cluster.password).
    assert httpx.get(f"{cluster.url(2)}/v1/topics/orders", headers=bearer(token(url, "alice"))).status_code == 200
    http_error(httpx.get(f"{cluster.url(2)}/v1/topics/orders", headers=bearer(token(url, "alice")[:-2] + "AA")),
               401, "UNAUTHENTICATED")


async def test_a_replayed_grpc_scram_exchange_is_refused(cluster: LocalCluster) -> None:
    async with GrpcClient(cluster.brokers[0].grpc_target) as client:
        exchange = ClientExchange("alice", PASSWORDS["alice"])
        started = await client.stub.ScramStart(pb.ScramStartRequest(client_first=exchange.client_first))
        final = pb.ScramFinishRequest(exchange_id=started.exchange_id,
                                      client_final=exchange.respond(started.server_first))
        await client.stub.ScramFinish(final)
        with pytest.raises(grpc.aio.AioRpcError) as replayed:
            await client.stub.ScramFinish(final)
        assert replayed.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_wrong_password_is_refused(cluster: LocalCluster, secrets_dir: Path) -> None:
    url = cluster.url(1)
    with GoQueueClient(url, credentials=creds("alice", "not-her-password")) as client, \
            pytest.raises(Unauthenticated, match="wrong user name or password") as refused:
        client.list_topics()
    assert "not-her-password" not in str(refused.value)
    (secrets_dir / "wrong").write_text("not-her-password\n")
    stderr = cli(url, "goqueue-cli", "topic", "list", expect=EXIT_UNAUTHENTICATED,
                 env={"GOQUEUE_USER": "alice", "GOQUEUE_PASSWORD_FILE": str(secrets_dir / "wrong")})
    assert "not-her-password" not in stderr
    cli(url, "goqueue-cli", "topic", "list", expect=EXIT_UNAUTHENTICATED,
        env={"GOQUEUE_USER": "nobody", "GOQUEUE_PASSWORD": "whatever"})


async def test_a_wrong_password_is_refused_over_grpc(cluster: LocalCluster) -> None:
    async with GrpcClient(cluster.brokers[1].grpc_target, credentials=creds("alice", "wrong")) as client:
        with pytest.raises(Unauthenticated, match="wrong user name or password"):
            await client.list_topics()


# -- forwarded requests: checked at the edge -----------------------------------------------------------------------

def not_leading(cluster: LocalCluster, topic: str, partition: int) -> int:
    leader = leaders(cluster, topic)[partition]
    return next(i for i in range(len(cluster.brokers)) if i != leader)


def test_a_forwarded_produce_is_checked_at_the_broker_the_client_called(cluster: LocalCluster) -> None:
    edge = not_leading(cluster, "orders", 0)
    refused = httpx.post(f"{cluster.url(edge)}/v1/topics/orders/records", headers=bearer(token(
        cluster.url(edge), "carol")), json={"records": [{"value": "x"}], "partition": 0})
    assert http_error(refused, 403, "FORBIDDEN") == "User:carol may not produce topic 'orders': no ACL allows it"


async def test_a_forwarded_grpc_produce_is_checked_at_the_edge(cluster: LocalCluster) -> None:
    edge = cluster.brokers[not_leading(cluster, "orders", 1)]
    async with GrpcClient(edge.grpc_target, credentials=creds("carol"), idempotent=False) as carol:
        with pytest.raises(Forbidden, match="User:carol may not produce"):
            await carol.produce("orders", [RecordIn(None, b"x", [])], partition=1)


def test_an_allowed_produce_is_forwarded_to_the_leader(cluster: LocalCluster) -> None:
    edge = not_leading(cluster, "orders", 2)
    with GoQueueClient(cluster.url(edge), credentials=creds("alice"), idempotent=False) as alice:
        assert alice.produce("orders", [ProduceRecord(value="via-edge")], partition=2).offsets


# -- anonymous access on, ACLs on: the anonymous principal needs ACLs too --------------------------------------------

def test_anonymous_produce_to_a_protected_topic_is_forbidden_when_anonymous_access_is_on(
        broker_factory: BrokerFactory, secrets_dir: Path) -> None:
    broker = broker_factory("open-with-acls", env={
        "GOQUEUE_SECURITY_ALLOWANONYMOUS": "true", "GOQUEUE_SECURITY_ACLSENABLED": "true",
        "GOQUEUE_SECURITY_ADMINUSER": "admin", "GOQUEUE_SECURITY_ADMINPASSWORDFILE": str(secrets_dir / "admin")})
    with GoQueueClient(broker.url, credentials=creds("admin")) as admin:
        for name in ("protected", "public"):
            admin.create_topic(TopicCreate(name=name, partitions=1, replication_factor=1))
        admin.add_acl(acl("User:*", "topic", "public", "produce"))
    with GoQueueClient(broker.url, idempotent=False) as anonymous:
        assert anonymous.produce("public", [ProduceRecord(value="ok")]).offsets
        with pytest.raises(Forbidden, match="User:ANONYMOUS may not produce topic 'protected'"):
            anonymous.produce("protected", [ProduceRecord(value="no")])
    cli(broker.url, "goqueue-cli", "produce", "protected", "--partition", "0", "--value", "no",
        expect=EXIT_FORBIDDEN)
    assert "security.anonymous_access_allowed" in broker.log_text()  # said at start, as a warning


def test_a_cluster_without_anonymous_access_does_not_announce_it(cluster: LocalCluster) -> None:
    assert all("security.anonymous_access_allowed" not in b.log_text() for b in cluster.brokers)
