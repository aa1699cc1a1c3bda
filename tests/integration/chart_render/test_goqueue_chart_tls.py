"""charts/goqueue with TLS and an administrator (issue 15, item 7): the certificate from an existing Secret or a
cert-manager Certificate, mounted read-only and named in the settings file; probes and `helm test` over HTTPS; the
administrator's password generated into a Secret; and no secret value anywhere but in a Secret — not in the settings
ConfigMap, not in an environment variable, not in an annotation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml
from helm_chart import Helm, Rendered

pytestmark = pytest.mark.integration  # helm renders: a subprocess

TLS_SECRET = ("--set", "tls.enabled=true", "--set", "tls.existingSecret=corp-tls")
ADMIN = ("--set", "auth.adminUser=ops")


def pod(rendered: Rendered, kind: str = "StatefulSet", name: str = "goqueue") -> dict[str, Any]:
    obj = rendered.get(kind, name)
    spec: dict[str, Any] = obj["spec"]["template"]["spec"] if kind == "StatefulSet" else obj["spec"]
    return spec


def settings(rendered: Rendered) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(rendered.get("ConfigMap", "goqueue-config")["data"]["goqueue.yaml"])
    return loaded


def test_an_existing_secret_is_mounted_read_only_and_named_in_the_settings(helm: Helm) -> None:
    rendered = helm.template(*TLS_SECRET)
    spec = pod(rendered)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls-certificate"]["secret"]["secretName"] == "corp-tls"
    assert volumes["tls-certificate"]["secret"]["defaultMode"] == 0o440
    (broker,) = spec["containers"]
    mounts = {m["name"]: m for m in broker["volumeMounts"]}
    assert mounts["tls-certificate"] == {"name": "tls-certificate", "mountPath": "/var/run/goqueue/tls",
                                         "readOnly": True}
    assert settings(rendered)["tls"] == {"certFile": "/var/run/goqueue/tls/tls.crt",
                                         "keyFile": "/var/run/goqueue/tls/tls.key",
                                         "caFile": "/var/run/goqueue/tls/ca.crt"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert broker[probe]["httpGet"]["scheme"] == "HTTPS"
    assert rendered.of_kind("Certificate") == []


def test_http_left_plain_keeps_plain_probes(helm: Helm) -> None:
    rendered = helm.template(*TLS_SECRET, "--set", "config.tls.listeners=grpc\\,internal")
    (broker,) = pod(rendered)["containers"]
    assert broker["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert settings(rendered)["tls"]["listeners"] == "grpc,internal"


def test_cert_manager_is_asked_for_a_certificate_naming_every_broker(helm: Helm) -> None:
    rendered = helm.template("--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true",
                             "--set", "tls.certManager.issuerRef.name=corp-ca", "--set",
                             "tls.certManager.issuerRef.kind=ClusterIssuer", release="prod", namespace="queues")
    certificate = rendered.get("Certificate", "prod-goqueue-tls")["spec"]
    assert certificate["secretName"] == "prod-goqueue-tls"
    assert certificate["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert "*.prod-goqueue-headless.queues.svc.cluster.local" in certificate["dnsNames"]
    assert "prod-goqueue.queues.svc" in certificate["dnsNames"]
    assert {"server auth", "client auth"} <= set(certificate["usages"])  # brokers are each other's clients
    volumes = {v["name"]: v for v in pod(rendered, name="prod-goqueue")["volumes"]}
    assert volumes["tls-certificate"]["secret"]["secretName"] == "prod-goqueue-tls"


@pytest.mark.parametrize(("args", "says"), [
    (("--set", "tls.enabled=true"), "exactly one place"),
    (("--set", "tls.enabled=true", "--set", "tls.existingSecret=a", "--set", "tls.certManager.enabled=true"),
     "exactly one place"),
    (("--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true"), "issuerRef.name"),
    (("--set", "auth.existingSecret=x"), "auth.adminUser"),
    (("--set", "config.tls.certFile=/x"), "additional properties 'certFile' not allowed"),
])
def test_incomplete_tls_or_auth_values_are_refused_with_the_fix(helm: Helm, args: tuple[str, ...], says: str) -> None:
    assert says in helm.refusal(*args)


def test_the_administrator_gets_a_generated_password_in_a_secret(helm: Helm) -> None:
    rendered = helm.template(*ADMIN)
    password = base64.b64decode(rendered.get("Secret", "goqueue-admin")["data"]["password"]).decode()
    assert len(password) >= 32
    assert settings(rendered)["security"] == {"allowAnonymous": True, "adminUser": "ops",
                                              "adminPasswordFile": "/var/run/goqueue/admin/password"}
    volumes = {v["name"]: v for v in pod(rendered)["volumes"]}
    assert volumes["admin-password"]["secret"]["secretName"] == "goqueue-admin"
    existing = helm.template(*ADMIN, "--set", "auth.existingSecret=corp-admin")
    assert [s["metadata"]["name"] for s in existing.of_kind("Secret")] == ["goqueue-raft"]


def test_helm_test_speaks_https_with_the_ca_and_logs_in_as_the_administrator(helm: Helm) -> None:
    rendered = helm.template(*TLS_SECRET, *ADMIN)
    test_pod = pod(rendered, "Pod", "goqueue-test")
    (container,) = test_pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GOQUEUE_SERVER"] == "https://goqueue:8080"
    assert env["GOQUEUE_CA_FILE"] == "/var/run/goqueue/tls/ca.crt"
    assert env["GOQUEUE_USER"] == "ops"
    assert env["GOQUEUE_PASSWORD_FILE"] == "/var/run/goqueue/admin/password"
    volumes = {v["name"]: v["secret"] for v in test_pod["volumes"]}
    assert volumes["tls-certificate"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never the broker's key


def test_no_secret_value_appears_outside_a_secret(helm: Helm) -> None:
    """The Raft and administrator passwords, given as values, end up only in Secrets' data: the settings ConfigMap,
    the pods' environment, annotations and the test Pod carry paths to files, never a value."""
    raft = "raft-S3cret-4f9a2c"
    rendered = helm.template(*TLS_SECRET, *ADMIN, "--set", f"cluster.password={raft}")
    admin = base64.b64decode(rendered.get("Secret", "goqueue-admin")["data"]["password"]).decode()  # generated
    text = json.dumps([obj for obj in rendered.objects if obj["kind"] != "Secret"])
    for value in (raft, admin, base64.b64encode(raft.encode()).decode(), base64.b64encode(admin.encode()).decode()):
        assert value not in text
    secrets = {s["metadata"]["name"]: s for s in rendered.of_kind("Secret")}
    assert base64.b64decode(secrets["goqueue-raft"]["data"]["password"]).decode() == raft
    for container in pod(rendered)["containers"]:
        for variable in container.get("env", []):
            assert "PASSWORD" not in variable["name"] or variable["name"] == "GOQUEUE_PASSWORD_FILE"
            assert "secretKeyRef" not in (variable.get("valueFrom") or {})
