"""The operator's own principal: its Secret, how the broker pods use it, how the operator reads it, and its client's
anonymous fallback for brokers a rolling upgrade has not reached yet."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue.config import load_settings
from goqueue.errors import Unauthenticated
from goqueue_operator.resources.children import CREATE_ONLY_KINDS, build_cluster_children
from goqueue_operator.users import principal
from goqueue_operator.views import ClusterView

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
OPERATOR_PASSWORD = "o" * 43


def cluster(**spec: Any) -> ClusterView:
    return ClusterView.from_body({"metadata": {"name": "orders", "namespace": "prod", "uid": "uid-1",
                                               "generation": 1}, "spec": spec})


def children() -> list[JSON]:
    return build_cluster_children(cluster(), password="p" * 43, operator_password=OPERATOR_PASSWORD)


def broker_pod() -> JSON:
    sts = next(c for c in children() if c["kind"] == "StatefulSet")
    pod: JSON = sts["spec"]["template"]["spec"]
    return pod


def test_the_secret_is_generated_once_and_owned_by_the_cluster() -> None:
    secret = next(c for c in children() if c["metadata"]["name"] == "orders-operator-credentials")
    assert secret["kind"] in CREATE_ONLY_KINDS
    assert secret["immutable"] is True
    assert secret["stringData"] == {"user": "goqueue-operator", "password": OPERATOR_PASSWORD}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_brokers_make_the_operator_their_administrator_from_the_mounted_secret() -> None:
    pod = broker_pod()
    volume = next(v for v in pod["volumes"] if v["name"] == "operator-credentials")
    assert volume["secret"]["secretName"] == "orders-operator-credentials"
    broker = pod["containers"][0]
    mount = next(m for m in broker["volumeMounts"] if m["name"] == "operator-credentials")
    assert (mount["mountPath"], mount["readOnly"]) == (principal.MOUNT_DIR, True)
    env = {e["name"]: e.get("value") for e in broker["env"]}
    settings = load_settings(None, {k: v for k, v in env.items() if k.startswith("GOQUEUE_SECURITY") and v})
    assert settings.security.admin_user == "goqueue-operator"
    assert str(settings.security.admin_password_file) == f"{principal.MOUNT_DIR}/password"
    # the runbook's in-pod CLIs act as the operator
    assert (env["GOQUEUE_USER"], env["GOQUEUE_PASSWORD_FILE"]) == ("goqueue-operator", principal.PASSWORD_FILE)
    assert "GOQUEUE_SECURITY_ALLOWANONYMOUS" not in env  # anonymous access: the broker's default (off with peers)
    assert all("password" not in str(e.get("value", "")).lower() or e["name"].endswith("FILE")
               for e in broker["env"])  # a path, never the password itself


class SecretKube:
    def __init__(self, data: dict[str, str] | None) -> None:
        self.data = data
        self.asked: list[tuple[str, str, str]] = []

    async def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        self.asked.append((kind, namespace, name))
        return None if self.data is None else {"data": self.data}


def read(data: dict[str, str] | None) -> tuple[Credentials | None, SecretKube]:
    kube = SecretKube(data)
    return asyncio.run(principal.operator_credentials(kube, "prod", "orders")), kube  # type: ignore[arg-type]


def test_the_operator_reads_its_password_from_the_secret() -> None:
    found, kube = read({"password": base64.b64encode(b"s3cret-pw").decode()})
    assert found == Credentials("goqueue-operator", "s3cret-pw")
    assert kube.asked == [("Secret", "prod", "orders-operator-credentials")]


@pytest.mark.parametrize("data", [None, {}, {"password": "%%% not base64"}, {"password": ""}])
def test_without_a_readable_secret_the_operator_calls_anonymously(data: dict[str, str] | None) -> None:
    assert read(data)[0] is None


def broker(knows_operator: bool, allows_anonymous: bool) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A broker that does or does not know the operator's user (mid-roll: not restarted yet)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.startswith("/v1/auth/scram/") and not knows_operator:
            return httpx.Response(401, json={"error": {"code": "UNAUTHENTICATED",
                                                       "message": "SCRAM authentication failed"}})
        if "authorization" not in request.headers and not allows_anonymous:
            return httpx.Response(401, json={"error": {"code": "UNAUTHENTICATED", "message": "anonymous is off"}})
        return httpx.Response(200, json={"leader": 1, "host": "b1", "term": 3})

    return httpx.MockTransport(handle), seen


def test_a_broker_that_does_not_know_the_operator_yet_is_called_anonymously() -> None:
    transport, seen = broker(knows_operator=False, allows_anonymous=True)
    client = principal.OperatorClient("http://b0:8080", transport=transport,
                                      credentials=Credentials("goqueue-operator", "pw"))
    assert client.cluster_leader().leader == 1
    assert "authorization" not in seen[-1].headers
    plain = GoQueueClient("http://b0:8080", transport=transport, credentials=Credentials("goqueue-operator", "pw"))
    with pytest.raises(Unauthenticated):  # what the fallback is for
        plain.cluster_leader()


def test_the_fallback_gains_nothing_on_a_broker_that_refuses_anonymous_calls() -> None:
    transport, _ = broker(knows_operator=False, allows_anonymous=False)
    client = principal.OperatorClient("http://b0:8080", transport=transport,
                                      credentials=Credentials("goqueue-operator", "pw"))
    with pytest.raises(Unauthenticated, match="anonymous is off"):
        client.cluster_leader()
