"""The operator's own principal on the brokers of each GoQueueCluster it runs.

Secret `<cluster>-operator-credentials` (a random password, generated once, owned by the cluster) is mounted
read-only into every broker pod, which makes user `goqueue-operator` its configured administrator
(`security.adminUser` + `security.adminPasswordFile`: a super user whose SCRAM credential every broker derives from
the file). The operator reads the same Secret and authenticates as that user with SCRAM-SHA-512, so the brokers can
refuse anonymous clients.

A rolling upgrade from a release whose brokers allowed anonymous access and had no such user: until a broker has
restarted with the Secret mounted it does not know `goqueue-operator` and refuses the SCRAM exchange — and still
allows anonymous access, so `OperatorClient` then sends the request without credentials. A restarted broker knows
the user and refuses anonymous requests; so every broker answers the operator, whichever the roller has reached, and
its health gates keep working through the roll.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue.errors import Unauthenticated
from goqueue_operator.kube import Kube
from goqueue_operator.resources.names import child_name

if TYPE_CHECKING:  # brokers.py imports this module
    from goqueue_operator.brokers import BrokerTls

log = logging.getLogger(__name__)

OPERATOR_USER = "goqueue-operator"
PASSWORD_KEY = "password"
USER_KEY = "user"
MOUNT_DIR = "/etc/goqueue-operator"  # not under /etc/goqueue: a mount point inside the read-only config volume
PASSWORD_FILE = f"{MOUNT_DIR}/{PASSWORD_KEY}"


def secret_name(cluster_name: str) -> str:
    return child_name(cluster_name, "operator-credentials")


async def operator_credentials(kube: Kube, namespace: str, cluster_name: str) -> Credentials | None:
    """The operator's credentials for a cluster; None before its Secret exists (the first reconcile of a cluster
    created by an earlier release creates it), so the call is anonymous as that release's brokers expect."""
    secret = await kube.get("Secret", namespace, secret_name(cluster_name))
    encoded = ((secret or {}).get("data") or {}).get(PASSWORD_KEY)
    if not encoded:
        return None
    try:
        password = base64.b64decode(encoded, validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        log.warning("operator.credentials_unreadable", extra={"namespace": namespace, "secret": secret_name(
            cluster_name), "detail": "the password key is not base64 text; calling the brokers anonymously"})
        return None
    return Credentials(OPERATOR_USER, password) if password else None


class OperatorClient(GoQueueClient):
    """A `GoQueueClient` that authenticates as the operator, and calls a broker that does not know the operator's
    user yet (a broker of the previous release, mid-roll) without credentials, as that broker expects.
    `broker_tls`: how it verifies its broker (brokers.BrokerTls), for a client of another user to the same broker."""

    broker_tls: BrokerTls | None = None

    def _authorization(self, server: str) -> dict[str, str]:
        try:
            return super()._authorization(server)
        except Unauthenticated as exc:
            log.info("operator.anonymous_fallback", extra={"server": server, "reason": exc.message})
            return {}

