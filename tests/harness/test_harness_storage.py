"""Claims bind to the PV pool, grow when asked, and namespaces (with claims and pods) delete completely."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from kubernetes import client as k8s

from goqueue_harness.pytest_plugin import KubeletHandle
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration


def _claim(name: str, size: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def _capacity(core: k8s.CoreV1Api, ns: str, name: str) -> str | None:
    claim = core.read_namespaced_persistent_volume_claim(name, ns)
    if claim.status.phase != "Bound" or not claim.status.capacity:
        return None
    capacity: str = claim.status.capacity["storage"]
    return capacity


def test_claim_binds_with_the_capacity_it_requested(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("data", "3Gi"))
    wait_until(lambda: _capacity(core, kube_namespace, "data") == "3Gi", 30, message="claim bound at 3Gi")
    claim = core.read_namespaced_persistent_volume_claim("data", kube_namespace)
    assert claim.spec.storage_class_name == "standard"


def test_resize_request_is_accepted_and_reflected_in_status(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("data", "1Gi"))
    wait_until(lambda: _capacity(core, kube_namespace, "data") == "1Gi", 30, message="claim bound at 1Gi")
    core.patch_namespaced_persistent_volume_claim(
        "data", kube_namespace, {"spec": {"resources": {"requests": {"storage": "5Gi"}}}})
    wait_until(lambda: _capacity(core, kube_namespace, "data") == "5Gi", 30, message="claim grown to 5Gi")
    volume = core.read_persistent_volume(core.read_namespaced_persistent_volume_claim("data", kube_namespace)
                                         .spec.volume_name)
    assert volume.spec.capacity["storage"] == "5Gi"


def test_shrinking_a_claim_is_rejected_by_the_api_server(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("data", "2Gi"))
    wait_until(lambda: _capacity(core, kube_namespace, "data") == "2Gi", 30, message="claim bound")
    with pytest.raises(k8s.ApiException) as raised:
        core.patch_namespaced_persistent_volume_claim(
            "data", kube_namespace, {"spec": {"resources": {"requests": {"storage": "1Gi"}}}})
    assert raised.value.status == 422


def test_claim_larger_than_the_pool_size_still_binds(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("huge", "2Ti"))
    wait_until(lambda: _capacity(core, kube_namespace, "huge") == "2Ti", 30, message="oversized claim bound")


def test_namespace_with_pods_and_claims_deletes_and_its_volume_is_reclaimed(
    core: k8s.CoreV1Api, kubelet: KubeletHandle
) -> None:
    ns = f"t-ns-delete-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": ns}})
    wait_until(lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(ns).items),
               30, message="default ServiceAccount")
    core.create_namespaced_persistent_volume_claim(ns, _claim("data", "1Gi"))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    core.create_namespaced_pod(ns, {"metadata": {"name": "sleeper"}, "spec": {
        "terminationGracePeriodSeconds": 3,
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    wait_until(lambda: core.read_namespaced_pod("sleeper", ns).status.phase == "Running", 30, message="pod running")
    volume_name = core.read_namespaced_persistent_volume_claim("data", ns).spec.volume_name

    core.delete_namespace(ns)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(ns)
        except k8s.ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_until(namespace_gone, 60, message="namespace deleted")

    def volume_reclaimed() -> bool:
        try:
            core.read_persistent_volume(volume_name)
        except k8s.ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_until(volume_reclaimed, 30, message=f"released volume {volume_name} deleted by the pool")


def test_offline_resize_waits_for_a_pod_restart(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    claim = _claim("data", "1Gi")
    claim["metadata"]["annotations"] = {"goqueue.dev/harness-resize-mode": "offline"}
    core.create_namespaced_persistent_volume_claim(kube_namespace, claim)
    wait_until(lambda: _capacity(core, kube_namespace, "data") == "1Gi", 30, message="claim bound")
    core.patch_namespaced_persistent_volume_claim(
        "data", kube_namespace, {"spec": {"resources": {"requests": {"storage": "4Gi"}}}})

    def pending() -> bool:
        status = core.read_namespaced_persistent_volume_claim("data", kube_namespace).status
        return any(c.type == "FileSystemResizePending" and c.status == "True" for c in status.conditions or [])

    wait_until(pending, 30, message="FileSystemResizePending")
    assert _capacity(core, kube_namespace, "data") == "1Gi"
    core.create_namespaced_pod(kube_namespace, {"metadata": {"name": "user"}, "spec": {
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "terminationGracePeriodSeconds": 1,
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    wait_until(lambda: _capacity(core, kube_namespace, "data") == "4Gi", 30, message="resize finished by pod start")
    assert not pending()
