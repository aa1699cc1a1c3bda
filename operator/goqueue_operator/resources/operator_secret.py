"""Secret `<cluster>-operator-credentials`: the password of the operator's own principal on the cluster's brokers
(goqueue_operator/users/principal.py).

Generated once, like the Raft password: the password is an argument (randomness stays in the shell,
`handlers/cluster.py`), the Secret is applied create-only (`children.CREATE_ONLY_KINDS`) and immutable, and it is
owned by the cluster (deleted with it).
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources.secret import generated_secret
from goqueue_operator.users.principal import OPERATOR_USER, PASSWORD_KEY, USER_KEY
from goqueue_operator.views import ClusterView


def build_operator_secret(cluster: ClusterView, password: str) -> dict[str, Any]:
    assert len(password) >= 32, "the operator's password must be long and random"
    return generated_secret(cluster, "operator-credentials", {USER_KEY: OPERATOR_USER, PASSWORD_KEY: password})
