"""The cluster CA's planner: from what the Secrets hold and the clock, the one next step. Pure.

The lifecycle, after Strimzi's cluster CA (but with reloads instead of restarts):

1. no CA: make one (CreateCA); publish it as the trust bundle (PublishTrust); issue the broker certificate.
2. the broker certificate is missing, signed by another CA, names the wrong hosts, or is within renewBefore of its
   expiry: issue a new one (IssueBrokerCertificate). Brokers reload it: no restart.
3. the CA is within caRenewBefore of its expiry: make a successor (CreateSuccessorCA) and add it to every trust
   bundle (PublishTrust) while the old CA still signs. Once the bundle has had `TRUST_PROPAGATION` to reach every
   broker (kubelet's Secret sync, then the broker's reload check), the successor signs (PromoteSuccessorCA) and the
   broker certificate is re-issued from it (step 2); the old CA stays trusted so a broker that has not reloaded
   yet is still believed.
4. the old CA has expired: nothing it signed can be valid any more, so it leaves the bundles (DropExpiredCA).

The executor (execute.py) performs a step, observes the result and asks again, until Idle or Blocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from goqueue_operator.pki.certs import CertFacts

# kubelet refreshes a Secret volume within its sync period plus its cache TTL (about 1-2 minutes by default);
# the broker checks its files every tls.reloadCheckInterval (10 s). Ten minutes covers both with room to spare.
TRUST_PROPAGATION = timedelta(minutes=10)


class PkiStepKind(StrEnum):
    IDLE = "Idle"
    BLOCKED = "Blocked"
    CREATE_CA = "CreateCA"
    CREATE_SUCCESSOR = "CreateSuccessorCA"
    PROMOTE_SUCCESSOR = "PromoteSuccessorCA"
    DROP_EXPIRED_CA = "DropExpiredCA"
    PUBLISH_TRUST = "PublishTrust"
    ISSUE_LEAF = "IssueBrokerCertificate"


@dataclass(frozen=True)
class PkiObserved:
    """What the three Secrets hold, as facts. `problem`: material the operator will not touch by itself."""

    signing: CertFacts | None = None          # <cluster>-cluster-ca ca.crt (with its key)
    successor: CertFacts | None = None        # next-ca.crt: made, trusted, not signing yet
    previous: CertFacts | None = None         # previous-ca.crt: retired, trusted until it expires
    trust_published_at: datetime | None = None
    leaf: CertFacts | None = None             # <cluster>-broker-tls tls.crt (with its key)
    broker_trust: frozenset[str] = frozenset()  # fingerprints in <cluster>-broker-tls ca.crt
    client_trust: frozenset[str] = frozenset()  # fingerprints in <cluster>-cluster-ca-cert ca.crt
    problem: str | None = None

    @property
    def wanted_trust(self) -> frozenset[str]:
        return frozenset(c.fingerprint for c in (self.signing, self.successor, self.previous) if c is not None)


@dataclass(frozen=True)
class PkiPolicy:
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    leaf_validity: timedelta
    leaf_renew_before: timedelta
    ca_validity: timedelta
    ca_renew_before: timedelta
    trust_propagation: timedelta = TRUST_PROPAGATION


@dataclass(frozen=True)
class PkiStep:
    kind: PkiStepKind
    reason: str = ""    # CamelCase (Event reason)
    message: str = ""   # for people
    next_check: datetime | None = None  # Idle: when something falls due next

    @property
    def acts(self) -> bool:
        return self.kind not in (PkiStepKind.IDLE, PkiStepKind.BLOCKED)


def _leaf_problem(observed: PkiObserved, policy: PkiPolicy, now: datetime) -> str | None:
    leaf, signing = observed.leaf, observed.signing
    assert signing is not None
    if leaf is None:
        return "no broker certificate yet"
    if leaf.issuer_key_id is None or leaf.issuer_key_id != signing.key_id:
        return "the broker certificate is not signed by the current cluster CA"
    if set(leaf.dns_names) != set(policy.dns_names) or set(leaf.ip_addresses) != set(policy.ip_addresses):
        return "the broker certificate does not name exactly the brokers' hosts"
    if leaf.expired(now):
        return f"the broker certificate expired at {leaf.not_after:%Y-%m-%dT%H:%M:%SZ}"
    if leaf.due(now, policy.leaf_renew_before):
        return f"the broker certificate expires at {leaf.not_after:%Y-%m-%dT%H:%M:%SZ}, within renewBefore"
    return None


def _next_check(observed: PkiObserved, policy: PkiPolicy) -> datetime | None:
    moments = []
    if observed.leaf is not None:
        moments.append(observed.leaf.not_after - policy.leaf_renew_before)
    if observed.signing is not None:
        moments.append(observed.signing.not_after - policy.ca_renew_before)
    if observed.previous is not None:
        moments.append(observed.previous.not_after)
    if observed.successor is not None and observed.trust_published_at is not None:
        moments.append(observed.trust_published_at + policy.trust_propagation)
    return min(moments) if moments else None


def next_pki_step(observed: PkiObserved, policy: PkiPolicy, now: datetime) -> PkiStep:
    if observed.problem is not None:
        return PkiStep(PkiStepKind.BLOCKED, "ClusterCAInvalid", observed.problem)
    signing = observed.signing
    if signing is None:
        return PkiStep(PkiStepKind.CREATE_CA, "ClusterCACreated", "no cluster CA: making one")
    if observed.previous is not None and observed.previous.expired(now):
        return PkiStep(PkiStepKind.DROP_EXPIRED_CA, "ExpiredCADropped",
                       f"the previous cluster CA expired at {observed.previous.not_after:%Y-%m-%dT%H:%M:%SZ}: "
                       "it leaves the trust bundles")
    if observed.successor is None and signing.due(now, policy.ca_renew_before):
        return PkiStep(PkiStepKind.CREATE_SUCCESSOR, "ClusterCARenewing",
                       f"the cluster CA expires at {signing.not_after:%Y-%m-%dT%H:%M:%SZ}: making its successor, "
                       "trusted first and signing later")
    if observed.wanted_trust != observed.broker_trust or observed.wanted_trust != observed.client_trust:
        return PkiStep(PkiStepKind.PUBLISH_TRUST, "TrustBundleUpdated",
                       f"the CA bundles now hold {len(observed.wanted_trust)} CA certificate(s)")
    if observed.successor is not None:
        published = observed.trust_published_at
        trusted_long_enough = published is not None and now >= published + policy.trust_propagation
        if trusted_long_enough or signing.expired(now):
            return PkiStep(PkiStepKind.PROMOTE_SUCCESSOR, "ClusterCARenewed",
                           "the successor CA is trusted everywhere: it signs from now on (the old one stays "
                           "trusted until it expires)")
    if (problem := _leaf_problem(observed, policy, now)) is not None:
        return PkiStep(PkiStepKind.ISSUE_LEAF, "BrokerCertificateIssued", f"{problem}: issuing one")
    return PkiStep(PkiStepKind.IDLE, "CertificatesValid", "", _next_check(observed, policy))
