"""Taking over a StatefulSet the operator did not create (a plain-chart release moved under the operator).

`helm install goqueue charts/goqueue` makes the same objects, by the same names, as a GoQueueCluster `goqueue`
(resources/names.py): a user moves a release under the operator by making helm forget it (its release Secrets are
deleted; nothing else is) and applying a GoQueueCluster of the same name (docs/OPERATOR.md). The Services, the
ConfigMap and the PDB are then simply applied over (server-side apply with force takes their fields); the Raft
password Secret is create-only, so the running brokers' password is kept.

The StatefulSet cannot be applied over: fields only the chart set (annotations, probes, volumes) would stay in its
pod template, owned by helm's field manager, forever. So it is deleted with `propagationPolicy: Orphan` — its pods
and claims keep running — and created again from the operator's spec; the new StatefulSet adopts the running pods
(same selector), and because its strategy is OnDelete, nothing restarts until the operator's roll restarts each
broker once, one at a time, after the previous one caught up.

Refused, with the reason in status and a Warning Event, is whatever would break the running brokers: a StatefulSet
controlled by another object, another selector (its pods would be orphaned beside new ones of the same names),
claims under another template name (restarted brokers would start on empty volumes), or another headless Service
(the brokers' peer names would change under a running Raft group). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from goqueue_operator.resources import labels
from goqueue_operator.resources.names import DATA_CLAIM_TEMPLATE, child_name

JSON = dict[str, Any]


class AdoptionKind(Enum):
    NONE = "None"          # no StatefulSet yet, or it is ours
    ADOPT = "Adopt"        # orphan-delete it now; the next reconcile creates ours
    REFUSED = "Refused"    # leave it alone and say why


@dataclass(frozen=True)
class Adoption:
    kind: AdoptionKind
    message: str = ""


NOTHING_TO_ADOPT = Adoption(AdoptionKind.NONE)


def plan_adoption(cluster_name: str, cluster_uid: str, statefulset: JSON | None) -> Adoption:
    if statefulset is None:
        return NOTHING_TO_ADOPT
    meta = statefulset.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    if any(o.get("uid") == cluster_uid for o in owners):
        return NOTHING_TO_ADOPT
    name = meta.get("name", "")
    controller = next((o for o in owners if o.get("controller")), None)
    if controller is not None:
        return Adoption(AdoptionKind.REFUSED, f"StatefulSet {name} is controlled by {controller.get('kind')} "
                        f"{controller.get('name')}; delete that owner or give the GoQueueCluster another name")
    spec = statefulset.get("spec") or {}
    wanted = labels.selector_labels(cluster_name)
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if selector != wanted:
        return Adoption(AdoptionKind.REFUSED, f"StatefulSet {name} selects pods by {_labels(selector)}, the operator "
                        f"by {_labels(wanted)}: its running brokers could not be taken over")
    templates = [t.get("metadata", {}).get("name") for t in spec.get("volumeClaimTemplates") or []]
    if templates != [DATA_CLAIM_TEMPLATE]:
        return Adoption(AdoptionKind.REFUSED, f"StatefulSet {name} keeps its data in claims of template(s) "
                        f"{templates}, the operator in '{DATA_CLAIM_TEMPLATE}': restarted brokers would start empty")
    headless = child_name(cluster_name, "headless")
    if spec.get("serviceName") != headless:
        return Adoption(AdoptionKind.REFUSED, f"StatefulSet {name} names its brokers under Service "
                        f"{spec.get('serviceName')}, the operator under {headless}: the Raft peers' addresses would "
                        "change under a running group")
    made_by = (meta.get("labels") or {}).get("app.kubernetes.io/managed-by", "another tool")
    return Adoption(AdoptionKind.ADOPT, f"StatefulSet {name} (managed by {made_by}) is taken over: recreated from "
                    "this spec with its pods and claims kept running; the roll then restarts each broker once")


def _labels(selector: JSON) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "(nothing)"
