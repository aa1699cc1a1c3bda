"""What a user should do about a condition that went bad: the text of its Warning Event.

A condition tells *what* is wrong; `kubectl get events` is where people look first, so each bad transition also
becomes a Warning Event whose reason is the condition's reason (`ClusterNotFound`, `RejectedByBroker` …, not a
generic `ReadyFalse`) and whose message names the resource, says what happened and what fixes it — in the words
of the commands the user would type. Pure text: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from goqueue_operator.status.conditions import Condition


@dataclass(frozen=True)
class Subject:
    """The resource the Event is about, and the cluster it names (None for a GoQueueCluster itself)."""

    kind: str
    namespace: str
    name: str
    cluster: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name} -n {self.namespace}"


def remedy(subject: Subject, condition: Condition) -> str:
    """The fix for `condition` on `subject`; empty when the operator fixes it by itself."""
    cluster, ns, ref = subject.cluster, subject.namespace, subject.ref
    fixes = {
        "ClusterNotFound": f"create GoQueueCluster {cluster} in namespace {ns}, or set spec.clusterRef.name to an "
                           f"existing cluster (kubectl get goqueueclusters -n {ns})",
        "ClusterDeleting": f"GoQueueCluster {cluster} is being deleted; point spec.clusterRef.name at another cluster "
                           f"or delete this resource",
        "ClusterNotReady": f"no broker of {cluster} is Ready yet; see kubectl get goqueuecluster/{cluster} -n {ns} "
                           f"and its Events (retried until it is)",
        "RejectedByBroker": f"correct the spec (kubectl edit {ref}); the broker said what it refuses",
        "BrokerApiMissing": f"the brokers of {cluster} are older than this operator; raise spec.version of "
                            f"GoQueueCluster {cluster}",
        "BrokerError": f"retried automatically; if it persists, check the brokers (kubectl get pods -n {ns} "
                       f"-l app.kubernetes.io/instance={cluster}) and their logs",
        "Conflict": f"delete one of the two resources (kubectl delete {ref}), or give this one another name on the "
                    f"brokers",
        "CannotReconcile": f"the broker's object cannot be changed in place to match the spec; restore the spec "
                           f"(kubectl edit {ref}) or recreate the object",
        "InvalidSpec": f"correct the spec (kubectl edit {ref}); the message says which field",
        "AdoptionRefused": f"another StatefulSet named {subject.name} exists and cannot be taken over as it is; "
                           "delete it (its claims stay) or name the GoQueueCluster differently — docs/OPERATOR.md, "
                           "'From the plain chart to the operator'",
        "ClusterInvalid": f"GoQueueCluster {cluster} does not parse; correct its spec (kubectl edit "
                          f"goqueuecluster/{cluster} -n {ns})",
        "IssuanceFailed": f"see the message; the operator needs get and patch on Secrets (and on cert-manager "
                          f"Certificates with issuer CertManager); kubectl describe certificate -n {ns} shows what "
                          f"cert-manager says",
        "BrokersNotReady": f"see kubectl get pods -n {ns} -l app.kubernetes.io/instance={subject.name} and "
                           f"kubectl describe of the pods that are not Ready",
        # GoQueueTopic (handlers/topic.py)
        "ReplicationFactorNotPlanned": f"compare status.reassignment (kubectl get {ref} -o yaml) with the "
                                       f"brokers' view (kubectl exec -n {ns} {cluster}-0 -- goqueue-cli topic "
                                       f"describe <topic>); set spec.replicationFactor back to the topic's factor "
                                       f"until they agree (retried on every drift check)",
        # GoQueueRebalance (handlers/rebalance.py)
        "StaleProposal": f"partitions changed since the proposal was made, so the brokers refused those moves; review "
                         f"the new proposal (kubectl get {ref} -o yaml) and approve it: kubectl annotate "
                         f"{ref.split(' ')[0]} -n {ns} goqueue.io/rebalance=approve",
        # GoQueueUser (handlers/user.py)
        "TlsAuthenticationUnavailable": f"set spec.tls.enabled: true (issuer SelfSigned) on GoQueueCluster {cluster}, "
                                        f"or use spec.authentication.type scram (delete {ref} and create it again: "
                                        "the type is immutable)",
        "SecretConflict": f"delete or rename Secret {subject.name} in {ns}, or give the user another name",
        "SecretNotWritable": "grant the operator get, create and patch on secrets in this namespace (the chart's "
                             "RBAC does)",
    }
    return fixes.get(condition.reason, "")


def warning_message(subject: Subject, condition: Condition) -> str:
    """`<kind> <ns>/<name>: <what happened>. Fix: <what to do>` (the fix left out when there is none)."""
    what = condition.message or condition.reason
    fix = remedy(subject, condition)
    return f"{subject.kind} {subject.namespace}/{subject.name}: {what}" + (f". Fix: {fix}" if fix else "")


# Ready=False reasons that are a procedure running, not a failure (a Normal Event says what happens).
IN_PROGRESS = frozenset({"ReplicationFactorChanging", "WaitingForReassignment",  # GoQueueTopic
                         # GoQueueRebalance: the steps of a rebalance (handlers/rebalance.py)
                         "ProposalPending", "GoalsChanged", "AwaitingApproval", "Rebalancing", "Stopped"})


def is_failure(condition: Condition) -> bool:
    """A transition worth a Warning: Ready going False (but for a procedure in progress), or a problem condition
    (`warning`) going True."""
    if condition.type == "Ready":
        return condition.status is False and condition.reason not in IN_PROGRESS
    return condition.status is True and condition.warning
