"""Secret `<user>`: a user's credentials for its clients, owned by its GoQueueUser (deleted with it).

scram: `password`, `user` and `mechanism` (SCRAM-SHA-512) — what a client needs (`goqueue-cli --user <user>
--password-file <mounted password>`, `Credentials(user, password)`). The password is an argument: randomness stays
in the handler. The brokers never see it: the operator computes the salted SCRAM keys it sends
(`GoQueueClient.upsert_user`), as `goqueue-admin user create` does.
tls: `tls.crt`, `tls.key` (the client certificate and its key: `--cert`, `--key`) and `ca.crt` (the bundle that
verifies the brokers: `--ca`), type kubernetes.io/tls.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from goqueue_operator import API_VERSION
from goqueue_operator.users.view import UserView

MECHANISM = "SCRAM-SHA-512"
PASSWORD_KEY = "password"
PASSWORD_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits
MANAGED_BY_LABEL = {"app.kubernetes.io/managed-by": "goqueue-operator", "app.kubernetes.io/part-of": "goqueue"}


def _metadata(user: UserView) -> dict[str, Any]:
    owner = {"apiVersion": API_VERSION, "kind": "GoQueueUser", "name": user.meta.name, "uid": user.meta.uid,
             "controller": True, "blockOwnerDeletion": True}
    return {"name": user.meta.name, "namespace": user.meta.namespace,
            "labels": {**MANAGED_BY_LABEL, "goqueue.io/cluster": user.cluster_name}, "ownerReferences": [owner]}


def build_user_secret(user: UserView, password: str) -> dict[str, Any]:
    assert len(password) >= 32, "a user's password must be long and random"
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _metadata(user), "type": "Opaque",
            "stringData": scram_data(user, password)}


def build_certificate_secret(user: UserView, data: dict[str, bytes]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _metadata(user), "type": "kubernetes.io/tls",
            "data": encoded(data)}


def encoded(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def scram_data(user: UserView, password: str) -> dict[str, str]:
    return {"user": user.broker_name, PASSWORD_KEY: password, "mechanism": MECHANISM}


def secret_password(secret: dict[str, Any] | None) -> str | None:
    """The password a user's Secret holds; None when it holds none that can be read (then a new one is issued)."""
    encoded = ((secret or {}).get("data") or {}).get(PASSWORD_KEY)
    if not encoded:
        return None
    try:
        password = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password or None


def owned_by(secret: dict[str, Any], user: UserView) -> bool:
    """A Secret of that name that another object owns (or nobody) is not the operator's to overwrite."""
    return any(o.get("uid") == user.meta.uid for o in secret["metadata"].get("ownerReferences") or [])
