"""Pods get in-cluster API credentials: a kubeconfig beside the projected service-account token, via KUBECONFIG.

The integration test runs, inside a pod, what the operator does at start (kopf's ``login_via_client`` and the
``kubernetes`` client) and checks that the API server sees the pod's ServiceAccount: an allowed call succeeds and
a call its Role does not grant is refused (403), so RBAC is really exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from harness_pods import pod_manifest, python_container, read_pod
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from goqueue_harness.kubelet.serviceaccount import SERVICE_ACCOUNT_DIR, in_cluster_env
from goqueue_harness.kubelet.volumes import Mount
from goqueue_harness.pytest_plugin import KubeletHandle
from goqueue_harness.waiting import wait_until

SERVER = "https://127.0.0.1:6443"

# What goqueue-operator does at start (main.py: kopf.login_via_client; kube.py: kubernetes.config with
# KUBECONFIG), then one call its Role allows and one it does not.
WHOAMI = """
import json, logging, os
import kopf
from kubernetes import client, config
info = kopf.login_via_client(logger=logging.getLogger("login"), settings=kopf.OperatorSettings())
config.load_kube_config(config_file=os.environ["KUBECONFIG"])
core = client.CoreV1Api()
review = client.AuthenticationV1Api().create_self_subject_review({"apiVersion": "authentication.k8s.io/v1",
                                                                  "kind": "SelfSubjectReview"})
namespace = os.environ["NS"]
pods = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
try:
    core.list_namespaced_secret(namespace)
    secrets = "allowed"
except client.ApiException as exc:
    secrets = exc.status
print(json.dumps({"kubeconfig": os.environ["KUBECONFIG"], "kopf_server": info.server,
                  "kopf_has_token": bool(info.token), "user": review.status.user_info.username,
                  "pods": pods, "secrets": secrets}))
"""


def _mounts(tmp_path: Path, *, token: bool = True) -> list[Mount]:
    folder = tmp_path / "kube-api-access"
    folder.mkdir()
    (folder / "ca.crt").write_text("CA")
    if token:
        (folder / "token").write_text("TOKEN")
    return [Mount("/tmp", tmp_path / "tmp"), Mount(SERVICE_ACCOUNT_DIR + "/", folder)]


@pytest.mark.unit
def test_a_container_mounting_the_service_account_folder_gets_a_kubeconfig(tmp_path: Path) -> None:
    env = in_cluster_env(_mounts(tmp_path), {}, server=SERVER, namespace="ns", service_account="reader")
    kubeconfig = tmp_path / "kube-api-access" / "kubeconfig"
    assert env == {"KUBECONFIG": str(kubeconfig)}
    doc = yaml.safe_load(kubeconfig.read_text())
    # Paths relative to the kubeconfig: the mount-path rewriting of text files has nothing to rewrite.
    assert doc["clusters"][0]["cluster"] == {"server": SERVER, "certificate-authority": "ca.crt"}
    assert doc["users"][0] == {"name": "system:serviceaccount:ns:reader", "user": {"tokenFile": "token"}}
    loaded = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=loaded)
    assert loaded.host == SERVER
    assert loaded.get_api_key_with_prefix("BearerToken") == "Bearer TOKEN"
    assert loaded.ssl_ca_cert == str(tmp_path / "kube-api-access" / "ca.crt")


@pytest.mark.unit
def test_no_kubeconfig_without_the_mount_a_token_or_when_the_pod_sets_its_own(tmp_path: Path) -> None:
    mounts = _mounts(tmp_path)
    assert in_cluster_env(mounts, {"KUBECONFIG": "/etc/mine"}, server=SERVER, namespace="ns",
                          service_account="default") == {}
    assert in_cluster_env(mounts[:1], {}, server=SERVER, namespace="ns", service_account="default") == {}
    other = tmp_path / "other"
    other.mkdir()
    assert in_cluster_env(_mounts(other, token=False), {}, server=SERVER, namespace="ns",
                          service_account="default") == {}


def _finished(core: k8s.CoreV1Api, namespace: str, name: str) -> bool:
    pod = read_pod(core, namespace, name)
    return pod is not None and pod["status"].get("phase") in ("Succeeded", "Failed")


@pytest.mark.integration
def test_a_pod_authenticates_as_its_service_account_and_rbac_applies(
    core: k8s.CoreV1Api, kube_api: k8s.ApiClient, kube_namespace: str, kubelet: KubeletHandle,
) -> None:
    ns = kube_namespace
    core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(ns, {"metadata": {"name": "pod-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "reader"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]})
    env = [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    own = [{"name": "KUBECONFIG", "value": "/etc/my/kubeconfig"}]
    core.create_namespaced_pod(ns, pod_manifest("whoami", [
        python_container("main", WHOAMI, env=env),
        python_container("own", "import os; print(os.environ['KUBECONFIG'])", env=own),
    ], restartPolicy="Never", serviceAccountName="reader"))
    core.create_namespaced_pod(ns, pod_manifest("no-token", [
        python_container("main", "import os; print(os.environ.get('KUBECONFIG', 'unset'))"),
    ], restartPolicy="Never", automountServiceAccountToken=False))
    wait_until(lambda: _finished(core, ns, "whoami") and _finished(core, ns, "no-token"), 60,
               message="both pods finished")
    log = kubelet.logs(ns, "whoami", "main")
    pod = read_pod(core, ns, "whoami")
    assert pod is not None
    assert pod["status"]["phase"] == "Succeeded", log
    # The ServiceAccount admission plugin added the kube-api-access volume the kubelet wrote the files into.
    (volume,) = [v["name"] for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    seen = json.loads(log.strip().splitlines()[-1])
    assert seen["kubeconfig"].endswith(f"/volumes/{volume}/kubeconfig")
    assert seen["kopf_server"].startswith("https://127.0.0.1:")
    assert seen["kopf_has_token"] is True
    assert seen["user"] == f"system:serviceaccount:{ns}:reader"
    assert "whoami" in seen["pods"]  # allowed by the Role
    assert seen["secrets"] == 403  # not granted by the Role: refused, so the token is really the pod's
    assert kubelet.logs(ns, "whoami", "own").strip() == "/etc/my/kubeconfig"  # the pod's own choice wins
    assert kubelet.logs(ns, "no-token", "main").strip() == "unset"
