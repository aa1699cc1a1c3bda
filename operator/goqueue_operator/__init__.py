"""goqueue-operator: the Kubernetes operator (kopf) that runs GoQueue clusters, topics and consumer groups.

Layout (docs/OPERATOR.md has the whole story): `views.py` parses custom resources, `resources/` builds child
manifests as pure functions, `status/` computes status from what was observed, `roller/`, `resize/` and
`scaling/` are long procedures as pure planners plus straight-line executors, `handlers/` are the thin kopf
handlers, `kube.py` is the only module that talks to the Kubernetes API and `brokers.py` the only one that talks
to brokers (through `goqueue.client`).
"""

__version__ = "0.1.0"

GROUP = "goqueue.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
