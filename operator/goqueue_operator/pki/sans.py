"""What a broker certificate must name, for every way a broker is reached.

- peers dial each other by the advertised host, `<pod>.<cluster>-headless.<ns>.svc.<domain>` (pod_template.py):
  one wildcard covers every ordinal, so scaling needs no new certificate;
- clients use the client and metrics Services by any of their DNS forms;
- probes and in-pod CLIs (`kubectl exec ... goqueue-cli`) use localhost;
- the operator dials pod IPs but verifies the certificate as the pod's DNS name (brokers.py), so no pod IP is named.
"""

from __future__ import annotations

from goqueue_operator.resources.names import child_name
from goqueue_operator.views import ClusterView

LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


def _service_names(service: str, namespace: str, domain: str) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.{domain}"]


def broker_dns_names(cluster: ClusterView) -> tuple[str, ...]:
    ns, domain = cluster.namespace, cluster.cluster_domain
    headless = child_name(cluster.name, "headless")
    return (
        f"*.{headless}.{ns}.svc.{domain}", f"*.{headless}.{ns}.svc",
        *_service_names(child_name(cluster.name, "client"), ns, domain),
        *_service_names(child_name(cluster.name, "metrics"), ns, domain),
        "localhost",
    )


def broker_common_name(cluster: ClusterView) -> str:
    return f"{cluster.name}.{cluster.namespace}.svc"
