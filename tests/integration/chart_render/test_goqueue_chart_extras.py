"""charts/goqueue rendered by `helm template`: extraVolumes, extraVolumeMounts, sidecars and initContainers (issue 16
item 4) land in the broker pod where a user expects them, and names or paths the chart uses itself are refused with
the fix. The operator chart's: test_goqueue_operator_chart_upgrades.py."""

from __future__ import annotations

import pytest
from helm_chart import RUNBOOK_INSTALL, Helm, Obj

pytestmark = pytest.mark.integration  # helm renders: a subprocess

EXTRAS = ("--set", "extraVolumes[0].name=tls", "--set", "extraVolumes[0].secret.secretName=goqueue-tls",
          "--set", "extraVolumeMounts[0].name=tls", "--set", "extraVolumeMounts[0].mountPath=/etc/goqueue-tls",
          "--set", "extraVolumeMounts[0].readOnly=true",
          "--set", "sidecars[0].name=shipper", "--set", "sidecars[0].image=fluent/fluent-bit:3.1",
          "--set", "sidecars[0].volumeMounts[0].name=goqueue-data",
          "--set", "sidecars[0].volumeMounts[0].mountPath=/data", "--set", "sidecars[0].volumeMounts[0].readOnly=true",
          "--set", "initContainers[0].name=fetch-certs", "--set", "initContainers[0].image=busybox:1.36")


def pod_spec(helm: Helm, *args: str) -> Obj:
    spec: Obj = helm.template(*RUNBOOK_INSTALL, *args).get("StatefulSet", "goqueue")["spec"]["template"]["spec"]
    return spec


def test_extras_go_where_a_user_expects_them(helm: Helm) -> None:
    spec = pod_spec(helm, *EXTRAS)
    assert [v["name"] for v in spec["volumes"]] == ["config", "tmp", "cluster-password", "tls"]
    assert spec["volumes"][3]["secret"] == {"secretName": "goqueue-tls"}
    broker, shipper = spec["containers"]
    assert broker["name"] == "broker"
    assert broker["volumeMounts"][-1] == {"name": "tls", "mountPath": "/etc/goqueue-tls", "readOnly": True}
    assert [m["name"] for m in broker["volumeMounts"]] == ["goqueue-data", "config", "tmp", "cluster-password",
                                                              "tls"]
    # The sidecar reaches the claim template's volume (each broker's own data) by its name.
    assert shipper["volumeMounts"] == [{"name": "goqueue-data", "mountPath": "/data", "readOnly": True}]
    assert [c["name"] for c in spec["initContainers"]] == ["fetch-certs"]


def test_defaults_add_nothing_but_the_cluster_password(helm: Helm) -> None:
    spec = pod_spec(helm)
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["broker"]
    assert [v["name"] for v in spec["volumes"]] == ["config", "tmp", "cluster-password"]


@pytest.mark.parametrize(("args", "expected"), [
    (("--set", "extraVolumes[0].name=goqueue-data", "--set", "extraVolumes[0].emptyDir.medium=Memory"),
     "extraVolumes names a volume goqueue-data"),
    (("--set", "extraVolumes[0].name=config"), "Fix: give the volume another name"),
    (("--set", "extraVolumes[0].name=cluster-password"), "extraVolumes names a volume cluster-password"),
    (("--set", "extraVolumeMounts[0].name=x", "--set", "extraVolumeMounts[0].mountPath=/var/run/goqueue/tls"),
     "extraVolumeMounts mounts on /var/run/goqueue/tls"),
    (("--set", "extraVolumeMounts[0].name=x", "--set", "extraVolumeMounts[0].mountPath=/data/"),
     "extraVolumeMounts mounts on /data/"),
    (("--set", "extraVolumeMounts[0].name=x", "--set", "extraVolumeMounts[0].mountPath=/etc/goqueue"),
     "Fix: mount it elsewhere"),
    (("--set", "sidecars[0].name=broker", "--set", "sidecars[0].image=busybox"), "give the container another name"),
    (("--set", "initContainers[0].name=broker"), "give the container another name"),
    (("--set", "sidecars[0].image=busybox"), "missing property 'name'"),
    (("--set", "extraVolumeMounts[0].name=x", "--set", "extraVolumeMounts[0].mountPath=data"), "mountPath"),
])
def test_what_cannot_work_is_refused(helm: Helm, args: tuple[str, ...], expected: str) -> None:
    assert expected in helm.refusal(*RUNBOOK_INSTALL, *args)


def test_the_helm_test_pod_produces_and_consumes_through_the_client_service(helm: Helm) -> None:
    rendered = helm.template(*RUNBOOK_INSTALL)
    pod = rendered.get("Pod", "goqueue-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # Not selected by the brokers' Services, PDB or StatefulSet.
    selector = rendered.get("StatefulSet", "goqueue")["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GOQUEUE_SERVER"] == "http://goqueue:8080"  # the client Service, by name
    assert env["REPLICATION_FACTOR"] == "3"
    script = container["command"][-1]
    assert [word for word in ("topic create", "produce", "consume", "topic delete") if word not in script] == []
    assert container["image"] == rendered.get("StatefulSet", "goqueue")["spec"]["template"]["spec"][
        "containers"][0]["image"]
    assert "Pod/goqueue-test" not in helm.template(*RUNBOOK_INSTALL, "--skip-tests").names()
