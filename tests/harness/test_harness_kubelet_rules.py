"""The process-kubelet's pure rules: env resolution, mount-path rewriting, DNS records, quantities, status."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from goqueue_harness.kubelet.container import ContainerRecord, exit_code_of
from goqueue_harness.kubelet.dns import cluster_records, hosts_file_text
from goqueue_harness.kubelet.env import EnvError, PodFacts, container_env, expand
from goqueue_harness.kubelet.status import PodObservation, phase_of, pod_status
from goqueue_harness.kubelet.volumes import Mount, PathRewriter
from goqueue_harness.quantity import parse_quantity

pytestmark = pytest.mark.unit

POD: dict[str, Any] = {
    "metadata": {"name": "goqueue-1", "namespace": "prod", "uid": "u1", "labels": {"app": "goqueue"}},
    "spec": {"hostname": "goqueue-1", "subdomain": "goqueue-headless", "containers": [{"name": "broker"}]},
    "status": {"podIP": "127.5.0.2", "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_expand_substitutes_known_keeps_unknown_and_unescapes() -> None:
    assert expand("$(A)-$(B)-$$(A)", {"A": "1"}) == "1-$(B)-$(A)"


def test_env_order_envfrom_then_env_with_earlier_vars_expandable() -> None:
    facts = PodFacts(POD, "127.5.0.2", "127.0.0.1", "node", config_maps={"cm": {"data": {"X": "from-cm"}}})
    container = {"envFrom": [{"configMapRef": {"name": "cm"}}],
                 "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                         {"name": "URL", "value": "http://$(IP):8080/$(X)"},
                         {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}]}
    env = container_env(facts, container)
    assert env == {"X": "from-cm", "IP": "127.5.0.2", "URL": "http://127.5.0.2:8080/from-cm", "LABEL": "goqueue"}


def test_missing_required_key_is_an_error_and_optional_is_skipped() -> None:
    facts = PodFacts(POD, "ip", "host", "node", secrets={})
    ref = {"name": "nope", "key": "k"}
    with pytest.raises(EnvError):
        container_env(facts, {"env": [{"name": "A", "valueFrom": {"secretKeyRef": ref}}]})
    optional = {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {**ref, "optional": True}}}]}
    assert container_env(facts, optional) == {}


def test_rewriter_maps_mount_paths_at_path_boundaries_only() -> None:
    rewrite = PathRewriter([Mount("/var/lib/goqueue/data", Path("/host/pv-1")), Mount("/data", Path("/host/e"))])
    assert rewrite("/var/lib/goqueue/data/wal") == "/host/pv-1/wal"
    assert rewrite("--dir=/var/lib/goqueue/data") == "--dir=/host/pv-1"
    assert rewrite("dataDir: /var/lib/goqueue/data\n") == "dataDir: /host/pv-1\n"
    assert rewrite("/database /x/data http://h/data") == "/database /x/data http://h/data"
    assert rewrite("/data") == "/host/e"


def test_dns_records_follow_the_headless_service_rules() -> None:
    headless = {"metadata": {"name": "goqueue-headless", "namespace": "prod"},
                "spec": {"clusterIP": "None", "selector": {"app": "goqueue"}}}
    records = cluster_records([POD], [headless], asker_namespace="prod")
    names = {n for _, ns in records for n in ns}
    assert "goqueue-1.goqueue-headless.prod.svc.cluster.local" in names
    assert "goqueue-1.goqueue-headless" in names  # short form: same namespace only
    other = {n for _, ns in cluster_records([POD], [headless], asker_namespace="dev") for n in ns}
    assert "goqueue-1.goqueue-headless" not in other
    not_ready = {**POD, "status": {"podIP": "127.5.0.2", "conditions": []}}
    assert cluster_records([not_ready], [headless], "prod") == []  # unless publishNotReadyAddresses
    text = hosts_file_text(POD, "127.5.0.2", records, "127.0.0.1")
    assert not any(line.startswith("#") for line in text.splitlines())  # nss_wrapper rejects comments


def test_quantities_compare_across_spellings() -> None:
    assert parse_quantity("1Gi") == parse_quantity("1024Mi") == Decimal(2**30)
    assert parse_quantity("1.5G") == Decimal(1_500_000_000)
    assert parse_quantity("500m") == Decimal("0.5")
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("ten")


def test_exit_codes_follow_the_runtime_convention() -> None:
    assert exit_code_of(3) == 3
    assert exit_code_of(-15) == 143
    assert exit_code_of(-9) == 137


def test_a_crash_looping_pod_stays_running_and_not_ready() -> None:
    record = ContainerRecord("broker", "img", restart_count=2, state={"waiting": {"reason": "CrashLoopBackOff"}},
                             last_state={"terminated": {"exitCode": 1}})
    obs = PodObservation("127.5.0.2", "127.0.0.1", "t0", True, [], [record], "Always")
    assert phase_of(obs) == "Running"
    status = pod_status(POD, obs, "t1")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"


def test_readiness_gates_hold_ready_back() -> None:
    record = ContainerRecord("broker", "img", state={"running": {}}, ready=True)
    gated = {**POD, "spec": {**POD["spec"], "readinessGates": [{"conditionType": "example.com/gate"}]}}
    obs = PodObservation("127.5.0.2", "127.0.0.1", "t0", True, [], [record], "Always")
    ready = next(c for c in pod_status(gated, obs, "t1")["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"


def test_a_renewed_service_account_token_replaces_only_the_token_files(tmp_path: Path) -> None:
    import asyncio
    from types import SimpleNamespace

    from goqueue_harness.kubelet.pod import PodWorker

    pod: dict[str, Any] = {**POD, "spec": {**POD["spec"], "volumes": [
        {"name": "kube-api-access", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}},
        {"name": "data", "emptyDir": {}}]}}
    access, data = tmp_path / "access", tmp_path / "data"
    for folder in (access, data):
        folder.mkdir()
    (access / "token").write_text("old")
    (access / "ca.crt").write_text("ca")
    issued = ["new-1", "new-2"]
    worker = PodWorker(SimpleNamespace(token_ttl_s=0.05), pod)  # type: ignore[arg-type]
    worker._folders = {"kube-api-access": access, "data": data}

    async def renew_twice() -> None:
        asked_a_third_time = asyncio.Event()

        async def token() -> str:
            if not issued:  # both renewals written: the loop asks again
                asked_a_third_time.set()
                await asyncio.Event().wait()
            return issued.pop(0)

        worker._token = token  # type: ignore[method-assign]
        task = asyncio.create_task(worker._renew_tokens())
        await asked_a_third_time.wait()
        task.cancel()

    asyncio.run(asyncio.wait_for(renew_twice(), 5))
    assert (access / "token").read_text() == "new-2"
    assert (access / "ca.crt").read_text() == "ca"
    assert sorted(p.name for p in access.iterdir()) == ["ca.crt", "token"]
    assert list(data.iterdir()) == []
